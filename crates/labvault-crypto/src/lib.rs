//! LabVault's cryptography: the key hierarchy, the key file, and blob format v1.
//! API CONTRACT (being implemented): see the module docs.
#![forbid(unsafe_code)]
