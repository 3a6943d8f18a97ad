//! Sealing and opening one payload.
//!
//! A sealed payload is standard base64 of `format (1 byte) ‖ key id (8) ‖ nonce (24) ‖
//! ciphertext and tag`. The key id lets a worker pick the right key without trial decryption.
//! The job's name and id are authenticated with it, so a sealed payload copied into another job
//! is rejected rather than run with someone else's data.

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, Generate, KeyInit, Payload},
};

use super::key::{KEY_ID_LEN, Keyring, hex};

/// The only format written so far.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;

/// A sealed payload could not be opened. The job fails at once: retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// This process holds no key at all.
    #[error(
        "no key is configured (the payload was sealed with key id {key_id}); set SPOOL_KEY / SPOOL_PREVIOUS_KEYS"
    )]
    NoKey {
        /// Hex id of the key that sealed the payload.
        key_id: String,
    },
    /// None of the configured keys is the one that sealed the payload.
    #[error("no configured key matches (key id {key_id}); set SPOOL_KEY / SPOOL_PREVIOUS_KEYS")]
    UnknownKey {
        /// Hex id of the key that sealed the payload.
        key_id: String,
    },
    /// The key matched but the ciphertext did not authenticate.
    #[error(
        "the payload does not authenticate with key {key_id}: it was altered, or copied from another job"
    )]
    Rejected {
        /// Hex id of the key tried.
        key_id: String,
    },
    /// Not something Spool sealed.
    #[error("the sealed payload is malformed: {0}")]
    Malformed(&'static str),
}

/// Seals `plain` (the job's JSON) for the job `job` with id `id`, under the current key.
pub(crate) fn seal(keyring: &Keyring, job: &str, id: &str, plain: &[u8]) -> String {
    let key = keyring.current();
    let mut header = [0; HEADER_LEN];
    header[0] = FORMAT;
    header[1..].copy_from_slice(key.id_bytes());
    let nonce = XNonce::generate();
    let cipher = XChaCha20Poly1305::new(&(*key.bytes()).into());
    let aad = aad(&header, job, id);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 seals any message that fits in memory");
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

/// Opens a payload sealed by [`seal`] for the same job name and id.
pub(crate) fn open(
    keyring: Option<&Keyring>,
    job: &str,
    id: &str,
    sealed: &str,
) -> Result<String, DecryptError> {
    let bytes = STANDARD
        .decode(sealed)
        .map_err(|_| DecryptError::Malformed("not base64"))?;
    if bytes.len() < HEADER_LEN + NONCE_LEN {
        return Err(DecryptError::Malformed("too short"));
    }
    let (header, rest) = bytes.split_at(HEADER_LEN);
    if header[0] != FORMAT {
        return Err(DecryptError::Malformed("unknown format version"));
    }
    let key_id = hex(&header[1..]);
    let Some(keyring) = keyring else {
        return Err(DecryptError::NoKey { key_id });
    };
    let Some(key) = keyring.find(&header[1..]) else {
        return Err(DecryptError::UnknownKey { key_id });
    };
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| DecryptError::Malformed("bad nonce"))?;
    let cipher = XChaCha20Poly1305::new(&(*key.bytes()).into());
    let aad = aad(header, job, id);
    let plain = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| DecryptError::Rejected { key_id })?;
    String::from_utf8(plain).map_err(|_| DecryptError::Malformed("not UTF-8 JSON"))
}

/// What the tag covers besides the ciphertext: the header and the job's identity.
fn aad(header: &[u8], job: &str, id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + job.len() + id.len() + 2);
    aad.extend_from_slice(header);
    aad.extend_from_slice(job.as_bytes());
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::Key;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let ring = Keyring::new(Key::generate());
        let a = seal(&ring, "mail", "j1", br#"{"to":"a@b.c"}"#);
        let b = seal(&ring, "mail", "j1", br#"{"to":"a@b.c"}"#);
        assert_ne!(a, b, "a fresh nonce per seal");
        assert!(!a.contains("a@b.c"));
        assert_eq!(
            open(Some(&ring), "mail", "j1", &a).unwrap(),
            r#"{"to":"a@b.c"}"#
        );
    }

    #[test]
    fn rotation_opens_with_previous_keys_only_when_listed() {
        let (old, new) = (Key::generate(), Key::generate());
        let sealed = seal(&Keyring::new(old.clone()), "j", "1", b"{}");
        let rotated = Keyring::new(new.clone()).with_previous(old.clone());
        assert_eq!(open(Some(&rotated), "j", "1", &sealed).unwrap(), "{}");
        let dropped = Keyring::new(new);
        let err = open(Some(&dropped), "j", "1", &sealed).unwrap_err();
        assert_eq!(err, DecryptError::UnknownKey { key_id: old.id() });
        assert!(err.to_string().contains(&old.id()), "{err}");
        let err = open(None, "j", "1", &sealed).unwrap_err();
        assert_eq!(err, DecryptError::NoKey { key_id: old.id() });
    }

    #[test]
    fn tampering_and_moving_are_rejected() {
        let key = Key::generate();
        let ring = Keyring::new(key.clone());
        let sealed = seal(&ring, "j", "1", br#"{"n":1}"#);
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let tampered = STANDARD.encode(&bytes);
        let rejected = DecryptError::Rejected { key_id: key.id() };
        assert_eq!(
            open(Some(&ring), "j", "1", &tampered).unwrap_err(),
            rejected
        );
        assert_eq!(open(Some(&ring), "j", "2", &sealed).unwrap_err(), rejected);
        assert_eq!(open(Some(&ring), "k", "1", &sealed).unwrap_err(), rejected);
        assert_eq!(
            open(Some(&ring), "j", "1", "AAAA").unwrap_err(),
            DecryptError::Malformed("too short")
        );
        assert_eq!(
            open(Some(&ring), "j", "1", "%%%").unwrap_err(),
            DecryptError::Malformed("not base64")
        );
    }
}
