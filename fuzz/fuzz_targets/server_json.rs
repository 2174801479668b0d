//! The tenant server's JSON request bodies: any bytes into each wire type a handler accepts.
#![no_main]
use labvault_wire::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<LoginRequest>(data);
    let _ = serde_json::from_slice::<MfaLoginRequest>(data);
    let _ = serde_json::from_slice::<CommitRequest>(data);
    let _ = serde_json::from_slice::<AppendMembership>(data);
    let _ = serde_json::from_slice::<ApproveDevice>(data);
    let _ = serde_json::from_slice::<DeviceRegistration>(data);
    let _ = serde_json::from_slice::<KeyBoxes>(data);
    let _ = serde_json::from_slice::<PackManifest>(data);
    let _ = serde_json::from_slice::<UploadRequest>(data);
    let _ = serde_json::from_slice::<InvitationRequest>(data);
    let _ = serde_json::from_slice::<SharingPolicy>(data);
    let _ = labvault_client_unframe(data);
});

/// The framed multi-blob body (`u32 length || manifest || bytes`), as the server splits it.
fn labvault_client_unframe(b: &[u8]) -> Option<()> {
    if b.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes(b[..4].try_into().ok()?) as usize;
    let m = b.get(4..4usize.checked_add(n)?)?;
    serde_json::from_slice::<PackManifest>(m).ok().map(|_| ())
}
