//! Wire types shared by the tenant server and the desktop client.
#![forbid(unsafe_code)]
