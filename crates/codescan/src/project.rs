//! What the files of one project say about each other. A file scanned on its own sees a call
//! to `helpers.wrap(request).get_safe_value()` as carrying the request it was given; read
//! with its project, the scanner looks up `helpers.py`, finds that `get_safe_value` returns a
//! constant, and the value is clean. The same lookup finds helpers that return request data
//! without being given any (`wrapped.get_query_parameter("q")`).
//!
//! What is learnt about a module is a summary per function and method: the kinds of taint its
//! return value keeps from its arguments, and the taint it returns of its own (sources it
//! reads). Summaries are made once per module file and shared by the threads of a run.
//! Modules are found as the interpreter would find them on its path: a dotted name
//! `a.b` is `a/b.py` or `a/b/__init__.py` under the importing file's directory or one of
//! its parents (up to the first one holding `.git` or `pyproject.toml`, at most
//! [`MAX_PARENTS`] levels); relative imports (`from .util import f`) from the importing
//! file's package. A summary reads its module alone (its own imports are not followed), so
//! lookups cannot loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::decode_python_source;
use crate::python::ModuleSummary;

/// Parent directories searched for an absolute import, the importing file's own included.
pub const MAX_PARENTS: usize = 8;

/// Module files larger than this are not summarised (calls into them keep the default
/// reading: the result carries what the call was given).
const MAX_MODULE_BYTES: u64 = 2 << 20;

type Slot = Arc<OnceLock<Option<Arc<ModuleSummary>>>>;

/// The modules of the project(s) being scanned, found and summarised on first use. Create one
/// per run and pass it to every [`crate::Scanner::scan_file`]; `Send + Sync`.
#[derive(Default)]
pub struct Project {
    /// `(directory, dotted name)` -> the module file it names, if any.
    found: Mutex<HashMap<(PathBuf, String), Option<PathBuf>>>,
    /// Module file -> its summary (`None`: unreadable, binary, or too large).
    summaries: Mutex<HashMap<PathBuf, Slot>>,
}

impl std::fmt::Debug for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let summarised = self.summaries.lock().map_or(0, |s| s.len());
        f.debug_struct("Project")
            .field("modules_summarised", &summarised)
            .finish()
    }
}

impl Project {
    pub fn new() -> Self {
        Self::default()
    }

    /// The module file that the dotted name `module` (`pkg.util`, or `.util` / `..pkg`
    /// relative) names for code in `dir`.
    pub(crate) fn find_module(&self, dir: &Path, module: &str) -> Option<PathBuf> {
        let key = (dir.to_path_buf(), module.to_string());
        if let Some(found) = self.found.lock().ok()?.get(&key) {
            return found.clone();
        }
        let found = search(dir, module);
        if let Ok(mut cache) = self.found.lock() {
            cache.insert(key, found.clone());
        }
        found
    }

    /// The summary of the module file at `path`, made on first use (other threads asking
    /// for the same module meanwhile wait for it rather than repeat the work).
    pub(crate) fn summary(&self, path: &Path) -> Option<Arc<ModuleSummary>> {
        let slot: Slot = self
            .summaries
            .lock()
            .ok()?
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        slot.get_or_init(|| summarise_file(path).map(Arc::new))
            .clone()
    }
}

fn summarise_file(path: &Path) -> Option<ModuleSummary> {
    if std::fs::metadata(path).ok()?.len() > MAX_MODULE_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let source = decode_python_source(&bytes).ok()?;
    crate::python::summarise(&source)
}

/// The file a dotted module name names from `dir`, searched as described in the module docs.
fn search(dir: &Path, module: &str) -> Option<PathBuf> {
    let dots = module.len() - module.trim_start_matches('.').len();
    let parts: Vec<&str> = module[dots..]
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return None;
    }
    if dots > 0 {
        // `.util` is in the importing file's own package, `..util` one up.
        let mut base = dir.to_path_buf();
        for _ in 1..dots {
            base = base.parent()?.to_path_buf();
        }
        return module_file(&base, &parts);
    }
    let mut base = Some(dir);
    for _ in 0..MAX_PARENTS {
        let here = base?;
        if let Some(file) = module_file(here, &parts) {
            return Some(file);
        }
        if here.join(".git").exists() || here.join("pyproject.toml").exists() {
            return None;
        }
        base = here.parent();
    }
    None
}

/// `base/a/b.py` or `base/a/b/__init__.py` for the parts `[a, b]`.
fn module_file(base: &Path, parts: &[&str]) -> Option<PathBuf> {
    let mut path = base.to_path_buf();
    for part in parts {
        // A dotted name's parts are identifiers: nothing here may climb out of `base`.
        if part.contains(['/', '\\']) || *part == ".." {
            return None;
        }
        path.push(part);
    }
    let file = path.with_extension("py");
    if file.is_file() {
        return Some(file);
    }
    let package = path.join("__init__.py");
    package.is_file().then_some(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x = 1\n").unwrap();
        }
        dir
    }

    #[test]
    fn absolute_imports_are_found_from_the_file_or_a_parent_directory() {
        let root = tree(&["helpers/util.py", "pkg/__init__.py", "app/views/page.py"]);
        let views = root.path().join("app/views");
        assert_eq!(
            search(&views, "helpers.util"),
            Some(root.path().join("helpers/util.py"))
        );
        assert_eq!(
            search(&views, "pkg"),
            Some(root.path().join("pkg/__init__.py"))
        );
        assert_eq!(search(&views, "os.path"), None);
    }

    #[test]
    fn the_search_stops_at_the_repository_root() {
        let root = tree(&["helpers/util.py", "repo/.git/HEAD", "repo/app/page.py"]);
        assert_eq!(search(&root.path().join("repo/app"), "helpers.util"), None);
    }

    #[test]
    fn relative_imports_start_from_the_files_own_package() {
        let root = tree(&["pkg/util.py", "pkg/sub/views.py", "pkg/sub/near.py"]);
        let sub = root.path().join("pkg/sub");
        assert_eq!(
            search(&sub, ".near"),
            Some(root.path().join("pkg/sub/near.py"))
        );
        assert_eq!(
            search(&sub, "..util"),
            Some(root.path().join("pkg/util.py"))
        );
        assert_eq!(search(&sub, ".util"), None);
    }
}
