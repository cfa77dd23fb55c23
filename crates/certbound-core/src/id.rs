//! GUID-shaped identifiers (tenant, client and object ids in Entra's format).
//!
//! ```
//! use certbound_core::{derived_guid, guid_text};
//! let a = derived_guid(&[b"my-domain\0", b"tenant", b"\0", b"app"]);
//! assert_eq!(a, derived_guid(&[b"my-domain\0", b"tenant", b"\0", b"app"]));
//! assert_eq!((a.len(), a.matches('-').count()), (36, 4));
//! assert_eq!(guid_text(&[0xab; 16]), "abababab-abab-abab-abab-abababababab");
//! ```

/// `8-4-4-4-12` lowercase hex of 16 bytes.
pub fn guid_text(bytes: &[u8; 16]) -> String {
    let hex = |b: &[u8]| -> String { b.iter().map(|b| format!("{b:02x}")).collect() };
    format!(
        "{}-{}-{}-{}-{}",
        hex(&bytes[..4]),
        hex(&bytes[4..6]),
        hex(&bytes[6..8]),
        hex(&bytes[8..10]),
        hex(&bytes[10..16])
    )
}

/// A stable GUID: the first 16 bytes of SHA-256 over the concatenated `chunks` (put a
/// domain-separation prefix and separators in them).
pub fn derived_guid(chunks: &[&[u8]]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for c in chunks {
        ctx.update(c);
    }
    let d = ctx.finish();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d.as_ref()[..16]);
    guid_text(&first)
}

/// A random GUID (`None` when the system has no randomness).
pub fn random_guid() -> Option<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(guid_text(&bytes))
}
