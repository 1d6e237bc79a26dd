//! Credentials shared by every handler process: AWS role credentials and IMDSv2 session tokens
//! (or the IMDSv1 fallback that stands for a token that never came), Azure tokens per tenant,
//! app and resource, GCP access tokens.
//!
//! Each `ha_event_handler` is a new process, so a cache in memory would make every event pay the
//! metadata or login round trips again before its first API call. Instead each credential is one
//! file, used until shortly before it expires (each provider sets that margin):
//!
//! ```text
//! <HaDir::credential_cache()>/            owner-only directory (0700), on tmpfs beside replies/
//! ├── aws-imds-token-<hash>                owner-only files (0600), written atomically:
//! ├── aws-imds-v1-<hash>                   {"value":"…","use_until_ms":1795000000000}
//! ├── aws-role-<hash>                      (aws-imds-v1: no token came, IMDSv1 is used)
//! ├── azure-token-<hash>
//! └── gcp-token-<hash>
//! ```
//!
//! The `<hash>` is a SHA-256 of everything that decides the credential (endpoint, tenant, app id,
//! and a digest of the app key or key file), never the secret itself, so a changed key or key
//! file never reuses a token obtained with the old one. Nothing here is logged. The directory is
//! removed by [`clear`] when the server stops cleanly.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::secret::Secret;
use crate::fs_util::{self, Durability, Perms};
use crate::paths::HaDir;

/// How long before it expires a credential stops being used: five minutes (what botocore and
/// azure-identity keep), or half its lifetime if that is shorter, so a short-lived credential is
/// still shared. Every cloud's credentials use it: Azure and GCP tokens, AWS role credentials,
/// IMDS session tokens and the IMDSv1 fallback that stands for one.
pub const MARGIN: Duration = Duration::from_secs(300);

/// Where credentials are kept between processes; [`TokenCache::disabled`] keeps none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenCache {
    dir: Option<PathBuf>,
}

/// Names one credential: a kind (`azure-token`) and a hash of what decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    /// `parts` may include secrets: only their hash is kept, and only in the file name.
    pub fn new(kind: &str, parts: &[&str]) -> CacheKey {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        CacheKey(format!("{kind}-{}", hex::encode(&hash.finalize()[..16])))
    }
}

/// One file's content.
#[derive(Serialize, Deserialize)]
struct Entry {
    value: String,
    /// Milliseconds since the epoch after which the value is not used.
    use_until_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TokenCache {
    /// The cache of the HA directory's processes.
    pub fn of(dir: &HaDir) -> TokenCache {
        TokenCache::at(dir.credential_cache())
    }

    /// A cache in `dir` (created owner-only on first write).
    pub fn at(dir: impl Into<PathBuf>) -> TokenCache {
        TokenCache {
            dir: Some(dir.into()),
        }
    }

    /// No cache: every credential is fetched when needed.
    pub fn disabled() -> TokenCache {
        TokenCache { dir: None }
    }

    fn path(&self, key: &CacheKey) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(&key.0))
    }

    /// The credential under `key` if it may still be used, else the one `fetch` gets, kept for
    /// the next process until `margin` before it expires (or half its lifetime, if that is
    /// shorter: [`use_for`]). `fetch` answers the credential and how long it is valid from now;
    /// one valid for no time is used once and not kept. This is the one call a cloud's auth
    /// makes; [`TokenCache::forget`] drops a credential the cloud refused.
    pub fn get_or_fetch<E>(
        &self,
        key: &CacheKey,
        margin: Duration,
        fetch: impl FnOnce() -> Result<(Secret, Duration), E>,
    ) -> Result<Secret, E> {
        if let Some((value, _)) = self.get(key) {
            return Ok(value);
        }
        let (value, lifetime) = fetch()?;
        let usable = use_for(lifetime, margin);
        if !usable.is_zero() {
            self.put(key, &value, SystemTime::now() + usable);
        }
        Ok(value)
    }

    /// The value under `key` and until when it may be used, if it may still be used now. A file
    /// that is not ours and owner-only is ignored.
    fn get(&self, key: &CacheKey) -> Option<(Secret, SystemTime)> {
        usable(&self.path(key)?)
    }

    /// Keeps `value` under `key` until `use_until`. A cache that cannot be written only costs
    /// the next event a fetch, so failures are logged (without the value) and otherwise ignored.
    fn put(&self, key: &CacheKey, value: &Secret, use_until: SystemTime) {
        let (Some(dir), Some(path)) = (self.dir.as_ref(), self.path(key)) else {
            return;
        };
        let entry = Entry {
            value: value.expose().to_string(),
            use_until_ms: unix_ms(use_until),
        };
        if let Err(e) = write_owner_only(dir, &path, &entry) {
            log::warn!("credential cache {}: {e}", dir.display());
        }
    }

    /// What the cache holds, for `ha_api -c status`: each credential's kind (`aws-role`,
    /// `azure-token`) and until when it is used. Never a value. One that
    /// [`TokenCache::get_or_fetch`] would not use (expired, not owner-only) is not listed.
    pub fn entries(&self) -> Vec<(String, SystemTime)> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(files) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut entries: Vec<(String, SystemTime)> = files
            .flatten()
            .filter_map(|f| {
                let name = f.file_name().into_string().ok()?;
                let (kind, _hash) = name.rsplit_once('-')?;
                let (_value, until) = usable(&f.path())?;
                Some((kind.to_string(), until))
            })
            .collect();
        entries.sort();
        entries
    }

    /// Drops a credential the cloud refused, so the next use fetches a new one.
    pub fn forget(&self, key: &CacheKey) {
        if let Some(path) = self.path(key) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How long a credential valid for `lifetime` is used: until `margin` before it ends, or half
/// of it if `margin` would leave less.
pub fn use_for(lifetime: Duration, margin: Duration) -> Duration {
    lifetime.saturating_sub(margin.min(lifetime / 2))
}

/// The credential in `path` and until when it may be used, if it may still be used now and
/// the file is ours and owner-only.
fn usable(path: &Path) -> Option<(Secret, SystemTime)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let uid = nix::unistd::getuid().as_raw();
    if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return None;
    }
    let entry: Entry = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let until = SystemTime::UNIX_EPOCH + Duration::from_millis(entry.use_until_ms);
    (SystemTime::now() < until).then(|| (Secret::new(entry.value), until))
}

/// Writes one entry: the directory created owner-only and used only if it is ours and closed
/// to others, the file replaced whole (on tmpfs: no fsync to pay for).
fn write_owner_only(dir: &Path, path: &Path, entry: &Entry) -> std::io::Result<()> {
    crate::paths::owner_only_dir(dir)?;
    crate::paths::check_ours(dir)?;
    let bytes = serde_json::to_vec(entry)?;
    fs_util::replace(path, &bytes, Perms::OwnerOnly, Durability::RenameOnly)
}

/// Removes the HA directory's cached credentials (`ha_api -c stop`, a clean server stop).
pub fn clear(dir: &HaDir) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir.credential_cache()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_live_until_their_time_in_owner_only_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = TokenCache::at(tmp.path().join("cache"));
        let key = CacheKey::new("azure-token", &["tenant", "app", "the-key"]);
        assert!(!key.0.contains("the-key"));
        assert_eq!(cache.get(&key), None);
        let later = SystemTime::now() + Duration::from_secs(600);
        cache.put(&key, &Secret::new("tok"), later);
        let (value, until) = cache.get(&key).expect("cached");
        assert_eq!((value.expose(), unix_ms(until)), ("tok", unix_ms(later)));
        let dir_mode = std::fs::metadata(tmp.path().join("cache"))
            .expect("dir")
            .mode();
        let file_mode = std::fs::metadata(tmp.path().join("cache").join(&key.0))
            .expect("file")
            .mode();
        assert_eq!((dir_mode & 0o777, file_mode & 0o777), (0o700, 0o600));

        cache.put(&key, &Secret::new("old"), SystemTime::now());
        assert_eq!(cache.get(&key), None, "expired");
        let other = CacheKey::new("azure-token", &["tenant", "app", "a-new-key"]);
        assert_ne!(key, other, "a changed key is another entry");
        cache.put(&key, &Secret::new("tok"), later);
        cache.forget(&key);
        assert_eq!(cache.get(&key), None);
        assert_eq!(TokenCache::disabled().get(&key), None);
    }

    #[test]
    fn credentials_are_used_until_a_margin_or_half_their_life() {
        let secs = Duration::from_secs;
        assert_eq!(use_for(secs(3_600), MARGIN), secs(3_300));
        assert_eq!(use_for(secs(600), MARGIN), secs(300));
        assert_eq!(use_for(secs(120), MARGIN), secs(60));
        assert_eq!(use_for(Duration::ZERO, MARGIN), Duration::ZERO);
    }

    #[test]
    fn get_or_fetch_fetches_once_and_keeps_what_lives() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = TokenCache::at(tmp.path().join("cache"));
        let key = CacheKey::new("gcp-token", &["metadata"]);
        let fetched = std::cell::Cell::new(0);
        let fetch = |life: u64| {
            fetched.set(fetched.get() + 1);
            Ok::<_, ()>((
                Secret::new(format!("tok{}", fetched.get())),
                Duration::from_secs(life),
            ))
        };
        let get = |life| {
            cache
                .get_or_fetch(&key, MARGIN, || fetch(life))
                .expect("token")
        };
        assert_eq!(get(0).expose(), "tok1", "used once, not kept");
        assert_eq!(get(3_600).expose(), "tok2");
        assert_eq!(get(3_600).expose(), "tok2", "reused");
        cache.forget(&key);
        assert_eq!(get(3_600).expose(), "tok3", "fetched again once forgotten");
        assert_eq!(
            cache
                .get_or_fetch(&key, MARGIN, || Err::<(Secret, Duration), _>("no"))
                .map(|s| s.expose().to_string()),
            Ok("tok3".to_string())
        );
        cache.forget(&key);
        assert_eq!(
            cache
                .get_or_fetch(&key, MARGIN, || Err::<(Secret, Duration), _>("no"))
                .err(),
            Some("no")
        );
    }

    #[test]
    fn entries_name_the_usable_credentials_by_kind_and_never_their_value() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = TokenCache::at(tmp.path().join("cache"));
        let later = SystemTime::now() + Duration::from_secs(600);
        cache.put(
            &CacheKey::new("gcp-token", &["metadata"]),
            &Secret::new("tok-gcp"),
            later,
        );
        cache.put(
            &CacheKey::new("aws-role", &["http://127.0.0.1:1"]),
            &Secret::new("tok-old"),
            SystemTime::now() - Duration::from_secs(1),
        );
        let entries = cache.entries();
        let shown: Vec<(&str, u64)> = entries
            .iter()
            .map(|(kind, until)| (kind.as_str(), unix_ms(*until)))
            .collect();
        assert_eq!(
            shown,
            vec![("gcp-token", unix_ms(later))],
            "expired left out"
        );
        assert!(!format!("{entries:?}").contains("tok-"));
    }

    #[test]
    fn a_file_or_directory_others_can_read_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = TokenCache::at(tmp.path().join("c"));
        let key = CacheKey::new("gcp-token", &["metadata"]);
        cache.put(
            &key,
            &Secret::new("tok"),
            SystemTime::now() + Duration::from_secs(60),
        );
        assert!(cache.get(&key).is_some());
        let path = tmp.path().join("c").join(&key.0);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(cache.get(&key), None);
        // An existing directory open to others is not written to.
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let cache = TokenCache::at(&open);
        cache.put(
            &key,
            &Secret::new("tok"),
            SystemTime::now() + Duration::from_secs(60),
        );
        assert_eq!(std::fs::read_dir(&open).expect("ls").count(), 0);
    }
}
