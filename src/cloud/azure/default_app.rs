//! The default Azure AD app: one app that every Azure node without its own `-a -d -k` signs in
//! with, before the VM's managed identity. Kept where and as the original's token server
//! (csr_azure_utils' `auth_mgr`) kept it, so a router upgraded from it keeps its app with no step:
//!
//! ```text
//! ~/cloud/authMgr/aad_app_file      (mode 0600; its directory 0700)
//! {"cloud": "azure", "app_id": "…", "tenant_id": "…", "app_key": "…"}
//! ```
//!
//! `set_default_aad_app` writes it (after Azure AD gave the app a token), `clear_default_aad_app`
//! removes it, `show_auth_applications` and `ha_api -c status` name its app and tenant (never the
//! key). Each event handler reads it when it opens an Azure table, so a change applies to the
//! next event with no restart. The key is a [`Secret`]: no `Debug` or error shows it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cloud::secret::Secret;
use crate::cloud::CloudError;
use crate::node::{AzureCloud, Param, Provider};

/// The default app as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultApp {
    pub cloud: AzureCloud,
    pub app_id: String,
    pub tenant_id: String,
    /// As given to `set_default_aad_app` (it may be URL-encoded, as a node's `-k`).
    pub app_key: Secret,
    /// The file it was read from, for messages.
    pub path: PathBuf,
}

/// The file's fields. No `Debug`: it holds the key.
#[derive(Deserialize)]
struct FileJson {
    cloud: Option<String>,
    app_id: Option<String>,
    tenant_id: Option<String>,
    app_key: Option<String>,
}

impl DefaultApp {
    /// `<home>/cloud/authMgr/aad_app_file`.
    pub fn path_in(home: &Path) -> PathBuf {
        home.join("cloud").join("authMgr").join("aad_app_file")
    }

    /// [`DefaultApp::path_in`] `$HOME`; `None` when `HOME` is unset or empty (no default app
    /// can be found).
    pub fn path_from_env() -> Option<PathBuf> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| DefaultApp::path_in(Path::new(&h)))
    }

    /// The app in `path`; `Ok(None)` when there is no file. A file that cannot be used is an
    /// error naming the file, the field and the fix, never quoting the key. The file is made
    /// owner-only again if someone opened it (the original wrote it with the default umask).
    pub fn load(path: &Path) -> Result<Option<DefaultApp>, CloudError> {
        let shown = path.display();
        let fix = "run set_default_aad_app -p <cloud> -a <app id> -d <tenant id> -k <app key> again, or clear_default_aad_app";
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CloudError::Auth(format!(
                    "the default Azure AD app file {shown} cannot be read: {e}; make it readable by this user or {fix}"
                )))
            }
        };
        crate::paths::owner_only(path);
        // serde's message could quote the key: only the position is reported.
        let json: FileJson = serde_json::from_str(text.trim()).map_err(|e| {
            CloudError::Auth(format!(
                "the default Azure AD app file {shown} is not one JSON object {{\"cloud\", \"app_id\", \"tenant_id\", \"app_key\"}} (error at line {} column {}); {fix}",
                e.line(),
                e.column()
            ))
        })?;
        let field = |value: Option<String>, name: &str, param: Param| {
            let value = value.filter(|v| !v.is_empty()).ok_or_else(|| {
                CloudError::Auth(format!(
                    "the default Azure AD app file {shown} has no {name}; {fix}"
                ))
            })?;
            // The key is checked but never quoted; the others are ids and may be shown.
            param
                .validate(&value, Provider::Azure)
                .map_err(|_| {
                    let quoted = if param == Param::AppKey {
                        String::new()
                    } else {
                        format!(" {value:?}")
                    };
                    CloudError::Auth(format!(
                        "the default Azure AD app file {shown}: {name}{quoted} is not {}; {fix}",
                        param.accepted()
                    ))
                })
                .map(|v| v.as_str().to_string())
        };
        let cloud = field(json.cloud, "cloud", Param::Cloud)?;
        let cloud = cloud.parse::<AzureCloud>().map_err(|_| {
            CloudError::Auth(format!(
                "the default Azure AD app file {shown}: cloud {cloud:?} is not {}; {fix}",
                AzureCloud::ACCEPTED
            ))
        })?;
        Ok(Some(DefaultApp {
            cloud,
            app_id: field(json.app_id, "app_id", Param::AppId)?,
            tenant_id: field(json.tenant_id, "tenant_id", Param::TenantId)?,
            app_key: Secret::new(field(json.app_key, "app_key", Param::AppKey)?),
            path: path.to_path_buf(),
        }))
    }

    /// Writes the app to `self.path` as the original did (one JSON object, same keys), owner-only
    /// (0600, in a 0700 directory) and atomically: a temporary file, fsync, rename.
    pub fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::paths::owner_only_dir(dir)?;
        crate::paths::owner_only(dir);
        let text = serde_json::json!({
            "cloud": self.cloud.to_string(),
            "app_id": self.app_id,
            "tenant_id": self.tenant_id,
            "app_key": self.app_key.expose(),
        })
        .to_string();
        let mut tmp = tempfile::Builder::new()
            .prefix(".aad_app_file.")
            .tempfile_in(dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all())
    }

    /// Removes the file at `path`; `Ok(false)` if there was none.
    pub fn clear(path: &Path) -> std::io::Result<bool> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `app <id> in tenant <tenant> (cloud azure)`: what may be shown, never the key.
    pub fn describe(&self) -> String {
        format!(
            "app {} in tenant {} (cloud {})",
            self.app_id, self.tenant_id, self.cloud
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn app(path: PathBuf) -> DefaultApp {
        DefaultApp {
            cloud: AzureCloud::UsGov,
            app_id: "11111111-2222-3333-4444-555555555555".into(),
            tenant_id: "tenant-1".into(),
            app_key: Secret::new("k3y~S3cret"),
            path,
        }
    }

    #[test]
    fn the_original_file_is_read_and_written_in_its_format_owner_only() {
        let home = tempfile::tempdir().expect("tempdir");
        let path = DefaultApp::path_in(home.path());
        assert_eq!(DefaultApp::load(&path), Ok(None), "no file: no default app");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        // As the original's json.dumps wrote it, world-readable.
        std::fs::write(
            &path,
            r#"{"cloud": "azure", "app_id": "app-1", "tenant_id": "t-1", "app_key": "s3cret"}"#,
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let loaded = DefaultApp::load(&path).expect("load").expect("some");
        assert_eq!(
            (
                loaded.cloud,
                loaded.app_id.as_str(),
                loaded.tenant_id.as_str()
            ),
            (AzureCloud::Public, "app-1", "t-1")
        );
        assert_eq!(loaded.app_key.expose(), "s3cret");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "tightened when read");
        assert!(!format!("{loaded:?}").contains("s3cret"));

        let written = app(path.clone());
        written.save().expect("save");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"cloud": "azusgov", "app_id": written.app_id, "tenant_id": "tenant-1", "app_key": "k3y~S3cret"})
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(DefaultApp::load(&path).expect("load"), Some(written));
        assert!(DefaultApp::clear(&path).expect("clear"));
        assert!(!DefaultApp::clear(&path).expect("clear"));
    }

    #[test]
    fn a_bad_file_names_the_file_and_field_and_never_the_key() {
        let home = tempfile::tempdir().expect("tempdir");
        let path = DefaultApp::path_in(home.path());
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        let error = |text: &str| {
            std::fs::write(&path, text).expect("write");
            DefaultApp::load(&path).expect_err("refused").to_string()
        };
        let e = error(r#"{"cloud": "azure", "app_id": "a", "app_key": "s3cret key"}"#);
        assert!(
            e.contains("has no tenant_id") && e.contains("aad_app_file"),
            "{e}"
        );
        let e = error(
            r#"{"cloud": "azure", "app_id": "a", "tenant_id": "t", "app_key": "s3cret key"}"#,
        );
        assert!(e.contains("app_key is not") && !e.contains("s3cret"), "{e}");
        let e = error(r#"{"cloud": "aws", "app_id": "a", "tenant_id": "t", "app_key": "k"}"#);
        assert!(e.contains("cloud \"aws\""), "{e}");
        let e = error(r#"{"app_key": "s3cret"#);
        assert!(
            e.contains("not one JSON object") && !e.contains("s3cret"),
            "{e}"
        );
    }
}
