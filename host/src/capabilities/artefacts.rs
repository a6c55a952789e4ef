//! `artefacts`: files a pack writes into its own directory of the host's export directory
//! (`runtime.artefacts_dir/<pack>/<name>`), for outputs too large for a pack's memory (an
//! export of a million rows is appended page by page and streamed to the client from disk).
//! Deny by default: only a pack whose config grants `artefacts = true` gets a directory.
//! Names are checked before any path is made ([`check_name`]): a name is one file name, never
//! a path, so nothing outside the pack's directory can be reached.
//!
//! A route answers an artefact by naming it in the `x-valhalla-artefact` response header
//! (`http::response`): the host then sends the file as the body.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use wasmtime::component::{HasData, Linker};

use crate::runtime::CallContext;
use crate::runtime::bindings::CapabilityError;
use crate::runtime::bindings::valhalla::pack::artefacts::{self, Host};

/// The longest artefact name.
pub const MAX_NAME: usize = 128;

/// Why an artefact could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    #[error("this pack has no `artefacts` grant")]
    NotGranted,
    #[error(
        "`{0}` is not an artefact name (1 to {MAX_NAME} of A-Z a-z 0-9 . _ -, not starting with `.`)"
    )]
    BadName(String),
    #[error("no artefact `{0}`")]
    NotFound(String),
    #[error("artefact `{name}`: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

impl From<ArtefactError> for CapabilityError {
    fn from(e: ArtefactError) -> Self {
        match e {
            ArtefactError::NotGranted => Self::AccessDenied(e.to_string()),
            ArtefactError::BadName(_) => Self::Invalid(e.to_string()),
            ArtefactError::NotFound(_) => Self::NotFound(e.to_string()),
            // the path and the OS error stay in the host's log
            ArtefactError::Io { .. } => Self::Internal("the artefact store failed".into()),
        }
    }
}

/// `name` as a file name: 1..=[`MAX_NAME`] ASCII letters, digits, `.`, `_`, `-`, not starting
/// with `.` (so neither `.`, `..` nor a hidden file). No separator can pass, so a name never
/// leaves the pack's directory.
pub fn check_name(name: &str) -> Result<&str, ArtefactError> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(ArtefactError::BadName(
            name.chars().take(MAX_NAME).collect(),
        ))
    }
}

/// One pack's artefacts: its directory, when granted.
#[derive(Debug, Clone)]
pub struct Artefacts {
    pack: String,
    dir: Option<PathBuf>,
}

impl Artefacts {
    /// Pack `pack`'s artefacts under `root` (`runtime.artefacts_dir`) when `granted`.
    pub fn new(pack: &str, root: &Path, granted: bool) -> Self {
        Self {
            pack: pack.to_string(),
            dir: granted.then(|| root.join(pack)),
        }
    }

    /// None: the pack may not keep artefacts.
    pub fn denied(pack: &str) -> Self {
        Self {
            pack: pack.to_string(),
            dir: None,
        }
    }

    pub fn granted(&self) -> bool {
        self.dir.is_some()
    }

    /// The file of `name`, checked.
    fn path(&self, name: &str) -> Result<PathBuf, ArtefactError> {
        let dir = self.dir.as_ref().ok_or(ArtefactError::NotGranted)?;
        Ok(dir.join(check_name(name)?))
    }

    fn io(name: &str) -> impl FnOnce(std::io::Error) -> ArtefactError + '_ {
        move |source| ArtefactError::Io {
            name: name.to_string(),
            source,
        }
    }

    /// Append `data` to `name` (made, with the pack's directory, when missing); the size after.
    pub async fn append(&self, name: &str, data: &[u8]) -> Result<u64, ArtefactError> {
        let path = self.path(name)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(Self::io(name))?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(Self::io(name))?;
        file.write_all(data).await.map_err(Self::io(name))?;
        file.flush().await.map_err(Self::io(name))?;
        let meta = file.metadata().await.map_err(Self::io(name))?;
        Ok(meta.len())
    }

    /// The size of `name`; none when there is no such artefact.
    pub async fn size(&self, name: &str) -> Result<Option<u64>, ArtefactError> {
        let path = self.path(name)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(name)(e)),
        }
    }

    /// Remove `name`; false when there was none.
    pub async fn remove(&self, name: &str) -> Result<bool, ArtefactError> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Self::io(name)(e)),
        }
    }

    /// `name` opened for reading, with its size (what a download streams).
    pub async fn open(&self, name: &str) -> Result<(tokio::fs::File, u64), ArtefactError> {
        let path = self.path(name)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtefactError::NotFound(name.to_string()));
            }
            Err(e) => return Err(Self::io(name)(e)),
        };
        let meta = file.metadata().await.map_err(Self::io(name))?;
        if !meta.is_file() {
            return Err(ArtefactError::NotFound(name.to_string()));
        }
        Ok((file, meta.len()))
    }
}

/// What one call's `artefacts` imports see.
pub struct ArtefactsView<'a> {
    pub artefacts: &'a Artefacts,
    pub call: &'a CallContext,
}

struct ArtefactsData;

impl HasData for ArtefactsData {
    type Data<'a> = ArtefactsView<'a>;
}

/// Link `artefacts` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> ArtefactsView<'_>,
) -> wasmtime::Result<()> {
    artefacts::add_to_linker::<T, ArtefactsData>(linker, get)
}

impl ArtefactsView<'_> {
    /// The error as the guest gets it, logged first (I/O details stay here).
    fn refused(&self, e: ArtefactError) -> CapabilityError {
        let (pack, request_id) = (&self.artefacts.pack, &self.call.request_id);
        match &e {
            ArtefactError::Io { .. } => {
                tracing::error!(%pack, %request_id, error = %e, "artefact I/O failed")
            }
            _ => tracing::warn!(%pack, %request_id, error = %e, "artefact call refused"),
        }
        e.into()
    }
}

impl Host for ArtefactsView<'_> {
    async fn append(&mut self, name: String, data: Vec<u8>) -> Result<u64, CapabilityError> {
        self.artefacts
            .append(&name, &data)
            .await
            .map_err(|e| self.refused(e))
    }

    async fn size(&mut self, name: String) -> Result<Option<u64>, CapabilityError> {
        self.artefacts
            .size(&name)
            .await
            .map_err(|e| self.refused(e))
    }

    async fn remove(&mut self, name: String) -> Result<bool, CapabilityError> {
        self.artefacts
            .remove(&name)
            .await
            .map_err(|e| self.refused(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_file_names() {
        for ok in [
            "a",
            "export-0195.csv",
            "A_b.1-2.json",
            &"x".repeat(MAX_NAME),
        ] {
            assert_eq!(check_name(ok).unwrap(), ok);
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "/abs",
            "a/../../b",
            "name\0",
            "sp ace",
            "é.csv",
            "a:b",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(
                matches!(check_name(bad), Err(ArtefactError::BadName(_))),
                "{bad:?} must be refused"
            );
        }
    }

    #[tokio::test]
    async fn append_size_open_remove() {
        let root = tempfile::tempdir().unwrap();
        let a = Artefacts::new("exports", root.path(), true);
        assert_eq!(a.size("x.csv").await.unwrap(), None);
        assert_eq!(a.append("x.csv", b"a,b\n").await.unwrap(), 4);
        assert_eq!(a.append("x.csv", b"1,2\n").await.unwrap(), 8);
        assert_eq!(a.size("x.csv").await.unwrap(), Some(8));
        let on_disk = std::fs::read(root.path().join("exports/x.csv")).unwrap();
        assert_eq!(on_disk, b"a,b\n1,2\n");
        let (_, len) = a.open("x.csv").await.unwrap();
        assert_eq!(len, 8);
        assert!(a.remove("x.csv").await.unwrap());
        assert!(!a.remove("x.csv").await.unwrap());
        assert!(matches!(
            a.open("x.csv").await,
            Err(ArtefactError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn traversal_reaches_nothing_outside_the_packs_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("secret"), b"s").unwrap();
        let a = Artefacts::new("exports", root.path(), true);
        for name in ["../secret", "..", "../../etc/passwd", "/etc/passwd"] {
            assert!(matches!(
                a.append(name, b"x").await,
                Err(ArtefactError::BadName(_))
            ));
            assert!(matches!(a.size(name).await, Err(ArtefactError::BadName(_))));
            assert!(matches!(
                a.remove(name).await,
                Err(ArtefactError::BadName(_))
            ));
            assert!(matches!(a.open(name).await, Err(ArtefactError::BadName(_))));
        }
        assert_eq!(std::fs::read(root.path().join("secret")).unwrap(), b"s");
        // the pack's directory itself is not an artefact
        a.append("f", b"").await.unwrap();
        let other = Artefacts::new("other", root.path(), true);
        assert_eq!(
            other.size("f").await.unwrap(),
            None,
            "packs do not share files"
        );
    }

    #[tokio::test]
    async fn ungranted_is_access_denied() {
        let root = tempfile::tempdir().unwrap();
        let a = Artefacts::new("p", root.path(), false);
        assert!(!a.granted());
        assert!(matches!(
            a.append("x", b"1").await,
            Err(ArtefactError::NotGranted)
        ));
        assert!(matches!(a.size("x").await, Err(ArtefactError::NotGranted)));
        let call = CallContext::default();
        let mut view = ArtefactsView {
            artefacts: &a,
            call: &call,
        };
        assert!(matches!(
            view.append("x".into(), vec![1]).await,
            Err(CapabilityError::AccessDenied(_))
        ));
        assert!(matches!(
            view.size("../x".into()).await,
            Err(CapabilityError::AccessDenied(_))
        ));
        assert!(
            std::fs::read_dir(root.path()).unwrap().next().is_none(),
            "nothing was written"
        );
        let granted = Artefacts::new("p", root.path(), true);
        let mut view = ArtefactsView {
            artefacts: &granted,
            call: &call,
        };
        assert!(matches!(
            view.remove("../x".into()).await,
            Err(CapabilityError::Invalid(_))
        ));
    }
}
