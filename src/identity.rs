//! Who is calling: tollgate key generation and hashing, and the in-memory identity cache
//! the proxy authenticates against (no database I/O once a key is cached), invalidated
//! by every admin write before the write is acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use dashmap::DashMap;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::store::{Identity, Store, StoreError};

/// Every tollgate key starts with this.
pub const KEY_PREFIX: &str = "tg_";
/// Random base62 characters after the prefix.
const KEY_RANDOM_CHARS: usize = 40;
/// Characters of the key kept for display (`tg_` + 8).
const DISPLAY_PREFIX_CHARS: usize = 11;

/// Why a caller was not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or unknown tollgate key")]
    Unknown,
    #[error("key revoked")]
    Revoked,
    #[error("key expired")]
    Expired,
    #[error("user, project or organization archived")]
    Archived,
    #[error("identity store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// A freshly generated key: the plaintext (shown once) and what is stored.
#[derive(Debug)]
pub struct GeneratedKey {
    pub plaintext: String,
    pub hash: [u8; 32],
    pub prefix: String,
}

/// Makes a new `tg_` key with 40 random base62 characters (~238 bits).
pub fn generate_key() -> GeneratedKey {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let mut plaintext = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    plaintext.push_str(KEY_PREFIX);
    for _ in 0..KEY_RANDOM_CHARS {
        plaintext.push(char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]));
    }
    let hash = hash_key(&plaintext);
    let prefix = plaintext[..DISPLAY_PREFIX_CHARS].to_owned();
    GeneratedKey { plaintext, hash, prefix }
}

/// SHA-256 of a key's plaintext, the only form stored.
pub fn hash_key(plaintext: &str) -> [u8; 32] {
    Sha256::digest(plaintext.as_bytes()).into()
}

/// A string that could be a tollgate key (cheap check before any lookup).
pub fn looks_like_key(s: &str) -> bool {
    s.len() >= KEY_PREFIX.len() + 32
        && s.len() <= 128
        && s.starts_with(KEY_PREFIX)
        && s[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Unknown keys remembered at most (then the set starts over).
const MAX_UNKNOWN_KEYS: usize = 100_000;

/// Cached identity lookups, keyed by key hash or by (user, project) header pair.
#[derive(Debug)]
pub struct Identities {
    store: Store,
    by_key: DashMap<[u8; 32], Arc<Identity>>,
    by_headers: DashMap<(String, Uuid), Arc<Identity>>,
    /// Hashes of well-formed keys the database does not know, so a stream of made-up keys
    /// costs one query each at most once until the next admin write (bounded: emptied
    /// when full).
    unknown: DashMap<[u8; 32], ()>,
    /// Bumped by every invalidation so a lookup that raced with a write cannot
    /// put the stale row back into the cache.
    generation: AtomicU64,
}

impl Identities {
    /// An empty cache over `store`.
    pub fn new(store: Store) -> Identities {
        Identities {
            store,
            by_key: DashMap::new(),
            by_headers: DashMap::new(),
            unknown: DashMap::new(),
            generation: AtomicU64::new(0),
        }
    }

    /// Drops every cached identity; call after any write that can change one.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.by_key.clear();
        self.by_headers.clear();
        self.unknown.clear();
    }

    /// Authenticates a presented tollgate key.
    pub async fn by_key(&self, presented: &str) -> Result<Arc<Identity>, AuthError> {
        if !looks_like_key(presented) {
            return Err(AuthError::Unknown);
        }
        let hash = hash_key(presented);
        if self.unknown.contains_key(&hash) {
            return Err(AuthError::Unknown);
        }
        let cached = self.by_key.get(&hash).map(|e| Arc::clone(e.value()));
        let identity = match cached {
            Some(i) => i,
            None => {
                let generation = self.generation.load(Ordering::SeqCst);
                let loaded = self.store.identity_by_key_hash(&hash).await?;
                let Some(loaded) = loaded else {
                    self.remember_unknown(hash, generation);
                    return Err(AuthError::Unknown);
                };
                let loaded = Arc::new(loaded);
                self.by_key.insert(hash, Arc::clone(&loaded));
                if self.generation.load(Ordering::SeqCst) != generation {
                    self.by_key.remove(&hash);
                }
                loaded
            }
        };
        let matches = identity.key_hash.map(|h| bool::from(h.ct_eq(&hash))).unwrap_or(false);
        if !matches {
            return Err(AuthError::Unknown);
        }
        check_active(identity)
    }

    /// Remembers a key the database does not know, unless an admin write (which may have
    /// created it) happened since the lookup started.
    fn remember_unknown(&self, hash: [u8; 32], generation: u64) {
        if self.unknown.len() >= MAX_UNKNOWN_KEYS {
            self.unknown.clear();
        }
        self.unknown.insert(hash, ());
        if self.generation.load(Ordering::SeqCst) != generation {
            self.unknown.remove(&hash);
        }
    }

    /// Attributes a call from `x-tollgate-user` / `x-tollgate-project` (headers mode).
    pub async fn by_headers(&self, user: &str, project: &str) -> Result<Arc<Identity>, AuthError> {
        let project_id = Uuid::parse_str(project).map_err(|_| AuthError::Unknown)?;
        let cache_key = (user.to_owned(), project_id);
        let cached = self.by_headers.get(&cache_key).map(|e| Arc::clone(e.value()));
        let identity = match cached {
            Some(i) => i,
            None => {
                let generation = self.generation.load(Ordering::SeqCst);
                let loaded = self.store.identity_by_headers(user, project_id).await?;
                let Some(loaded) = loaded else { return Err(AuthError::Unknown) };
                let loaded = Arc::new(loaded);
                self.by_headers.insert(cache_key.clone(), Arc::clone(&loaded));
                if self.generation.load(Ordering::SeqCst) != generation {
                    self.by_headers.remove(&cache_key);
                }
                loaded
            }
        };
        check_active(identity)
    }
}

fn check_active(identity: Arc<Identity>) -> Result<Arc<Identity>, AuthError> {
    if identity.revoked {
        return Err(AuthError::Revoked);
    }
    if identity.archived {
        return Err(AuthError::Archived);
    }
    if identity.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(AuthError::Expired);
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate_key();
        assert!(k.plaintext.starts_with("tg_"));
        assert_eq!(k.plaintext.len(), 3 + KEY_RANDOM_CHARS);
        assert!(looks_like_key(&k.plaintext));
        assert_eq!(k.hash, hash_key(&k.plaintext));
        assert!(k.plaintext.starts_with(&k.prefix));
        assert_ne!(generate_key().plaintext, k.plaintext);
    }

    #[test]
    fn rejects_strings_that_cannot_be_keys() {
        assert!(!looks_like_key("sk-abc"));
        assert!(!looks_like_key("tg_short"));
        assert!(!looks_like_key(&format!("tg_{}", "a".repeat(31))));
        assert!(!looks_like_key(&format!("tg_{}!", "a".repeat(40))));
        assert!(looks_like_key(&format!("tg_{}", "a".repeat(32))));
    }
}
