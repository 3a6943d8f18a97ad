//! Keys and the keyring: which key seals new payloads and which ones may open old ones.

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::aead::Generate;
use sha2::{Digest, Sha256};

/// The environment variable holding the current key (base64 of 32 bytes).
pub const ENV_KEY: &str = "SPOOL_KEY";

/// The environment variable holding previous keys, comma separated, still accepted for reading.
pub const ENV_PREVIOUS_KEYS: &str = "SPOOL_PREVIOUS_KEYS";

/// Length of the key id written in front of every sealed payload.
pub(crate) const KEY_ID_LEN: usize = 8;

/// A 256-bit secret key. Its `Debug` output shows only the key id, never the key.
///
/// ```
/// use spool::encryption::Key;
/// // A key as `openssl rand -base64 32` prints one.
/// let key = Key::from_base64("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=").unwrap();
/// assert_eq!(key.id().len(), 16); // hex of the 8-byte key id
/// assert!(!format!("{key:?}").contains("q83v"));
/// ```
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    id: [u8; KEY_ID_LEN],
}

impl Key {
    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        // Domain-separated so the id is never a hash anyone else computes over the key.
        let digest = Sha256::new()
            .chain_update(b"spool key id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Key { bytes, id }
    }

    /// A key from standard base64 of 32 bytes (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<Key, KeyError> {
        let decoded = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|d: Vec<u8>| KeyError::WrongLength(d.len()))?;
        Ok(Key::from_bytes(bytes))
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        Key::from_bytes(chacha20poly1305::Key::generate().into())
    }

    /// The key as standard base64, the form `SPOOL_KEY` takes.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The key id in hex: the first 8 bytes of a SHA-256 over the key. It names the key in
    /// sealed payloads and error messages without revealing it.
    pub fn id(&self) -> String {
        hex(&self.id)
    }

    pub(crate) fn id_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("id", &self.id()).finish()
    }
}

/// The keys a dispatcher or worker holds: the current key seals new payloads; the current and
/// previous keys open them (key rotation, S-SEC-1).
///
/// ```
/// use spool::encryption::{Key, Keyring};
/// let keyring = Keyring::from_vars(
///     Some("q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="),
///     Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
/// )
/// .unwrap()
/// .expect("a key is set");
/// assert_eq!(keyring.key_ids().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl Keyring {
    /// A keyring that seals and opens with `current`.
    pub fn new(current: Key) -> Keyring {
        Keyring {
            current,
            previous: Vec::new(),
        }
    }

    /// Also opens payloads sealed with `key` (never seals with it).
    pub fn with_previous(mut self, key: Key) -> Keyring {
        self.previous.push(key);
        self
    }

    /// The keyring from `SPOOL_KEY` and `SPOOL_PREVIOUS_KEYS`; `Ok(None)` when neither is set.
    pub fn from_env() -> Result<Option<Keyring>, KeyError> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Keyring::from_vars(var(ENV_KEY).as_deref(), var(ENV_PREVIOUS_KEYS).as_deref())
    }

    /// The keyring from the values the two environment variables would hold.
    pub fn from_vars(
        current: Option<&str>,
        previous: Option<&str>,
    ) -> Result<Option<Keyring>, KeyError> {
        let Some(current) = current else {
            return match previous {
                Some(_) => Err(KeyError::PreviousWithoutCurrent),
                None => Ok(None),
            };
        };
        let mut keyring = Keyring::new(
            Key::from_base64(current).map_err(|e| KeyError::InVariable(ENV_KEY, Box::new(e)))?,
        );
        for (n, text) in previous.unwrap_or_default().split(',').enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let key = Key::from_base64(text).map_err(|e| {
                KeyError::InVariable(
                    ENV_PREVIOUS_KEYS,
                    Box::new(KeyError::Entry(n + 1, Box::new(e))),
                )
            })?;
            keyring = keyring.with_previous(key);
        }
        Ok(Some(keyring))
    }

    /// The key that seals new payloads.
    pub fn current(&self) -> &Key {
        &self.current
    }

    /// Ids of every key held, the current one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys().map(Key::id).collect()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    pub(crate) fn find(&self, id: &[u8]) -> Option<&Key> {
        self.keys().find(|k| k.id_bytes() == id)
    }
}

/// A key could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// Not standard base64.
    #[error(
        "a key must be standard base64 of 32 bytes; generate one with `openssl rand -base64 32`"
    )]
    NotBase64,
    /// Decoded to the wrong number of bytes.
    #[error(
        "a key must be 32 bytes, this one decodes to {0}; generate one with `openssl rand -base64 32`"
    )]
    WrongLength(usize),
    /// One entry of a comma-separated list was bad.
    #[error("entry {0}: {1}")]
    Entry(usize, Box<KeyError>),
    /// The bad key came from this environment variable.
    #[error("{0}: {1}")]
    InVariable(&'static str, Box<KeyError>),
    /// Previous keys without a current one.
    #[error("SPOOL_PREVIOUS_KEYS is set but SPOOL_KEY is not: set the current key too")]
    PreviousWithoutCurrent,
}

/// Where a dispatcher or worker gets its keys: a keyring set in code, else the environment,
/// read once on first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySource {
    set: Option<Arc<Keyring>>,
    env: Arc<OnceLock<Result<Option<Arc<Keyring>>, KeyError>>>,
}

impl KeySource {
    pub(crate) fn set(keyring: Keyring) -> KeySource {
        KeySource {
            set: Some(Arc::new(keyring)),
            env: Arc::default(),
        }
    }

    /// The keyring, if any key is configured.
    pub(crate) fn get(&self) -> Result<Option<Arc<Keyring>>, KeyError> {
        if let Some(set) = &self.set {
            return Ok(Some(set.clone()));
        }
        self.env
            .get_or_init(|| Keyring::from_env().map(|k| k.map(Arc::new)))
            .clone()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn base64_round_trip_and_stable_id() {
        let key = Key::from_base64(K1).unwrap();
        assert_eq!(key.to_base64(), K1);
        assert_eq!(
            key.id(),
            Key::from_base64(&format!(" {K1}\n")).unwrap().id()
        );
        assert_ne!(key.id(), Key::from_base64(K2).unwrap().id());
        assert_ne!(Key::generate().id(), Key::generate().id());
    }

    #[test]
    fn bad_keys_say_what_to_do() {
        let short = Key::from_base64("AAEC").unwrap_err();
        assert!(short.to_string().contains("decodes to 3"), "{short}");
        assert!(matches!(
            Key::from_base64("not base64!"),
            Err(KeyError::NotBase64)
        ));
        let err = Keyring::from_vars(Some(K1), Some(&format!("{K2},oops!"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SPOOL_PREVIOUS_KEYS: entry 2: a key must be standard base64 of 32 bytes; generate one with `openssl rand -base64 32`"
        );
        assert!(matches!(
            Keyring::from_vars(None, Some(K2)),
            Err(KeyError::PreviousWithoutCurrent)
        ));
        assert!(Keyring::from_vars(None, None).unwrap().is_none());
    }

    #[test]
    fn keyring_finds_current_and_previous_keys() {
        let ring = Keyring::from_vars(Some(K1), Some(&format!("{K2}, ")))
            .unwrap()
            .unwrap();
        let (k1, k2) = (Key::from_base64(K1).unwrap(), Key::from_base64(K2).unwrap());
        assert_eq!(ring.key_ids(), [k1.id(), k2.id()]);
        assert!(ring.find(k2.id_bytes()).is_some());
        assert!(ring.find(&[0; KEY_ID_LEN]).is_none());
        assert!(!format!("{ring:?}").contains(K1));
    }
}
