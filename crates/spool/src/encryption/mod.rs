//! Encrypted payloads (S-SEC-1): job types that opt in with [`Job::ENCRYPTED`](crate::Job::ENCRYPTED)
//! have their payload sealed with XChaCha20-Poly1305 at dispatch and opened by the worker.
//!
//! Only the payload is sealed; the envelope's id, job name, queue, options and trace stay
//! readable so the store, `spool jobs` and `spool failed` work as before. Keys come from
//! `SPOOL_KEY` (the current key) and `SPOOL_PREVIOUS_KEYS` (older keys still accepted), or from a
//! [`Keyring`] built in code. See `docs/encryption.md`.
//!
//! ```
//! use spool::encryption::{Key, Keyring};
//!
//! let old = Key::generate();
//! let new = Key::generate();
//! // Encrypt with `new`; still read jobs sealed with `old` while they drain.
//! let keyring = Keyring::new(new).with_previous(old);
//! assert_eq!(keyring.key_ids().len(), 2);
//! ```

mod key;
mod seal;

pub(crate) use key::KeySource;
pub use key::{ENV_KEY, ENV_PREVIOUS_KEYS, Key, KeyError, Keyring};
pub use seal::DecryptError;
pub(crate) use seal::{open, seal};
