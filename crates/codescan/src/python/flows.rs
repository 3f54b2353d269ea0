//! The one model of where untrusted data comes from, what makes it harmless and where it
//! does harm, shared by every taint rule. It is data: tables of qualified names (as the
//! semantic model resolves them through imports: `from flask import request as r` makes
//! `r.args` a `flask.request` attribute, `import subprocess as sp` makes `sp.run`
//! `subprocess.run`). A rule asks for the sinks of its kind ([`SinkKind`]) and for the
//! taint of the argument the table names; it does not keep its own lists.
//!
//! Sources covered: Flask, Quart and Bottle's global `request`; the `request` (or `req`)
//! parameter of Django, Pyramid, aiohttp, Starlette and Sanic views; Tornado's
//! `self.request` and `self.get_argument` family; the parameters of route-decorated
//! functions (Flask, FastAPI, Bottle, aiohttp route tables); an AWS Lambda handler's
//! `event`; command-line input (`sys.argv`, `input()`, `sys.stdin`, argparse) and the
//! environment (dangerous for commands and code, but choosing files is its ordinary job).

use super::Taint;

/// Qualified names of request objects that are module globals (Flask and friends).
pub const REQUEST_GLOBALS: &[&str] = &[
    "flask.request",
    "quart.request",
    "bottle.request",
    "werkzeug.local.request",
];

/// Local names a request object has by convention: a Django/Pyramid/aiohttp/Starlette
/// view's parameter, Tornado's and class-based views' attribute.
pub const REQUEST_LOCALS: &[&str] = &["request", "self.request", "req"];

/// Attributes of a request object that are not user data (the Host header reaches only
/// the sender's own browser, so it is not a reflection vector).
pub const REQUEST_NON_DATA: &[&str] = &[
    "method",
    "is_json",
    "is_secure",
    "endpoint",
    "blueprint",
    "user",
    "scheme",
    "session",
    "app",
    "auth",
    "host",
    "hostname",
];

/// Calls whose result is input from whoever runs the program (standard input,
/// [`Taint::LOCAL_USER`]).
pub const INPUT_CALLS: &[&str] = &[
    "input",
    "raw_input",
    "sys.stdin.read",
    "sys.stdin.readline",
    "sys.stdin.readlines",
    "click.prompt",
];

/// Calls whose result is request data (Tornado's handler methods).
pub const REQUEST_CALLS: &[&str] = &[
    "self.get_argument",
    "self.get_query_argument",
    "self.get_body_argument",
    "self.get_arguments",
    "self.get_query_arguments",
    "self.get_body_arguments",
    "self.get_cookie",
    "self.get_secure_cookie",
];

/// Calls that read the environment or the command line's parsed options: set by whoever
/// runs the program ([`Taint::LOCAL_USER`]).
pub const ENVIRONMENT_CALLS: &[&str] = &["os.getenv", "os.environ.get", "os.getenvb"];

/// Methods returning parsed command-line options (`argparse`): environment-like input.
pub const ARGUMENT_PARSER_METHODS: &[&str] = &["parse_args", "parse_known_args"];

/// Functions an AWS Lambda runtime calls with the triggering `event` as first argument.
pub const LAMBDA_HANDLERS: &[&str] = &["lambda_handler", "handler"];

/// Decorators that make a function a web request handler whose parameters are request
/// data (Flask, FastAPI, Bottle, aiohttp, Sanic, Pyramid).
pub const ROUTE_DECORATORS: &[&str] = &[
    ".route(",
    ".get(",
    ".post(",
    ".put(",
    ".delete(",
    ".patch(",
    ".websocket(",
    ".api_route(",
    "view_config(",
];

/// Calls whose result carries no user-controlled text: conversions, predicates, digests,
/// and framework calls that return a response or a fixed location.
pub const CLEANING_CALLS: &[&str] = &[
    "int",
    "float",
    "bool",
    "len",
    "abs",
    "round",
    "isinstance",
    "hasattr",
    "uuid.UUID",
    "uuid.uuid4",
    "os.path.exists",
    "os.path.isfile",
    "os.path.isdir",
    "os.path.getsize",
    "datetime.fromisoformat",
    "hashlib.sha256",
    "hashlib.md5",
    "hashlib.sha1",
    "bcrypt.hashpw",
    "id",
    "type",
    "ord",
    "hash",
    "render_template",
    "flask.render_template",
    "url_for",
    "flask.url_for",
    "abort",
    "flask.abort",
    "redirect",
    "flask.redirect",
    "send_from_directory",
    "flask.send_from_directory",
    "render_template_string",
    "flask.render_template_string",
    "open",
    "io.open",
];

/// Sanitizers: (callee, or suffix after a dot, and the kinds of sink its result is safe for).
pub const SANITIZERS: &[(&str, Taint)] = &[
    ("escape", Taint::HTML),
    ("conditional_escape", Taint::HTML),
    ("bleach.clean", Taint::HTML),
    ("clean", Taint::HTML),
    ("quoteattr", Taint::HTML),
    ("format_html", Taint::HTML),
    ("jsonify", Taint::ALL),
    ("json_response", Taint::ALL),
    ("JsonResponse", Taint::ALL),
    ("secure_filename", Taint::PATH.or(Taint::SHELL)),
    ("os.path.basename", Taint::PATH),
    ("shlex.quote", Taint::SHELL),
    ("pipes.quote", Taint::SHELL),
    ("quote", Taint::SHELL.or(Taint::HTML).or(Taint::URL)),
    ("quote_plus", Taint::HTML.or(Taint::URL)),
    ("urlencode", Taint::HTML.or(Taint::URL)),
];

/// What harm data does at a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Runs through a shell: metacharacters start other commands (CWE-78).
    Shell,
    /// Starts a program without a shell: the program or its arguments (CWE-78).
    Exec,
    /// Evaluated as Python code (CWE-94/95).
    Code,
    /// Names a file to read, write or delete (CWE-22).
    File,
    /// SQL text (CWE-89).
    Sql,
    /// A URL the server fetches (CWE-918).
    Fetch,
}

/// A sink: the callee (qualified, as resolved through imports), its kind, and which
/// argument carries the dangerous value (position, or keyword).
pub struct Sink {
    pub name: &'static str,
    pub kind: SinkKind,
    pub position: usize,
    pub keyword: &'static str,
    /// Also match any callee ending in `.name` (methods on objects of unknown type:
    /// `cursor.execute`); otherwise the resolved name must be exactly `name`.
    pub method: bool,
}

const fn exact(name: &'static str, kind: SinkKind, position: usize, keyword: &'static str) -> Sink {
    Sink {
        name,
        kind,
        position,
        keyword,
        method: false,
    }
}

const fn method(
    name: &'static str,
    kind: SinkKind,
    position: usize,
    keyword: &'static str,
) -> Sink {
    Sink {
        name,
        kind,
        position,
        keyword,
        method: true,
    }
}

use SinkKind::{Code, Exec, Fetch, File, Shell, Sql};

/// Every sink, standard library and common third-party packages.
pub static SINKS: &[Sink] = &[
    // Shells. `subprocess.*` with `shell=True` is decided by the command-injection rule.
    exact("os.system", Shell, 0, "command"),
    exact("os.popen", Shell, 0, "cmd"),
    exact("os.popen2", Shell, 0, "cmd"),
    exact("os.popen3", Shell, 0, "cmd"),
    exact("subprocess.getoutput", Shell, 0, "cmd"),
    exact("subprocess.getstatusoutput", Shell, 0, "cmd"),
    exact("commands.getoutput", Shell, 0, "cmd"),
    exact("asyncio.create_subprocess_shell", Shell, 0, "cmd"),
    exact("fabric.api.local", Shell, 0, "command"),
    exact("invoke.run", Shell, 0, "command"),
    // Programs started without a shell: the first argument (or the first element of the
    // argument list) is the program.
    exact("os.execl", Exec, 0, "path"),
    exact("os.execle", Exec, 0, "path"),
    exact("os.execlp", Exec, 0, "file"),
    exact("os.execlpe", Exec, 0, "file"),
    exact("os.execv", Exec, 0, "path"),
    exact("os.execve", Exec, 0, "path"),
    exact("os.execvp", Exec, 0, "file"),
    exact("os.execvpe", Exec, 0, "file"),
    exact("os.spawnl", Exec, 1, "path"),
    exact("os.spawnle", Exec, 1, "path"),
    exact("os.spawnlp", Exec, 1, "file"),
    exact("os.spawnlpe", Exec, 1, "file"),
    exact("os.spawnv", Exec, 1, "path"),
    exact("os.spawnve", Exec, 1, "path"),
    exact("os.spawnvp", Exec, 1, "file"),
    exact("os.spawnvpe", Exec, 1, "file"),
    exact("os.posix_spawn", Exec, 0, "path"),
    exact("os.posix_spawnp", Exec, 0, "path"),
    exact("subprocess.run", Exec, 0, "args"),
    exact("subprocess.call", Exec, 0, "args"),
    exact("subprocess.check_call", Exec, 0, "args"),
    exact("subprocess.check_output", Exec, 0, "args"),
    exact("subprocess.Popen", Exec, 0, "args"),
    exact("asyncio.create_subprocess_exec", Exec, 0, "program"),
    // Code.
    exact("eval", Code, 0, "source"),
    exact("exec", Code, 0, "source"),
    exact("compile", Code, 0, "source"),
    exact("builtins.eval", Code, 0, "source"),
    exact("builtins.exec", Code, 0, "source"),
    exact("execfile", Code, 0, "filename"),
    // Files.
    exact("open", File, 0, "file"),
    exact("io.open", File, 0, "file"),
    exact("codecs.open", File, 0, "filename"),
    exact("os.open", File, 0, "path"),
    exact("os.remove", File, 0, "path"),
    exact("os.unlink", File, 0, "path"),
    exact("os.rmdir", File, 0, "path"),
    exact("os.rename", File, 0, "src"),
    exact("os.replace", File, 0, "src"),
    exact("os.listdir", File, 0, "path"),
    exact("os.makedirs", File, 0, "name"),
    exact("os.mkdir", File, 0, "path"),
    exact("os.chmod", File, 0, "path"),
    exact("os.truncate", File, 0, "path"),
    // Existence and metadata checks tell the client which files exist outside the
    // intended directory.
    exact("os.path.exists", File, 0, "path"),
    exact("os.path.lexists", File, 0, "path"),
    exact("os.path.isfile", File, 0, "path"),
    exact("os.path.isdir", File, 0, "s"),
    exact("os.path.getsize", File, 0, "filename"),
    exact("os.stat", File, 0, "path"),
    exact("os.access", File, 0, "path"),
    exact("shutil.rmtree", File, 0, "path"),
    exact("shutil.copy", File, 0, "src"),
    exact("shutil.copyfile", File, 0, "src"),
    exact("shutil.copy2", File, 0, "src"),
    exact("shutil.copytree", File, 0, "src"),
    exact("shutil.move", File, 0, "src"),
    exact("fileinput.input", File, 0, "files"),
    exact("linecache.getlines", File, 0, "filename"),
    exact("aiofiles.open", File, 0, "file"),
    method("send_file", File, 0, "path_or_file"),
    method("FileResponse", File, 0, "path"),
    exact("flask.send_file", File, 0, "path_or_file"),
    exact("starlette.responses.FileResponse", File, 0, "path"),
    exact("fastapi.responses.FileResponse", File, 0, "path"),
    exact("django.http.FileResponse", File, 0, "streaming_content"),
    // SQL: the query text.
    method("execute", Sql, 0, "sql"),
    method("executemany", Sql, 0, "sql"),
    method("executescript", Sql, 0, "sql_script"),
    method("raw", Sql, 0, "raw_query"),
    method("read_sql", Sql, 0, "sql"),
    method("read_sql_query", Sql, 0, "sql"),
    method("mogrify", Sql, 0, "query"),
    method("query", Sql, 0, "query"),
    method("fetchrow", Sql, 0, "query"),
    method("fetchval", Sql, 0, "query"),
    exact("sqlalchemy.text", Sql, 0, "text"),
    exact("django.db.models.expressions.RawSQL", Sql, 0, "sql"),
    exact("django.db.models.RawSQL", Sql, 0, "sql"),
    // URLs the server fetches.
    exact("requests.get", Fetch, 0, "url"),
    exact("requests.post", Fetch, 0, "url"),
    exact("requests.put", Fetch, 0, "url"),
    exact("requests.patch", Fetch, 0, "url"),
    exact("requests.delete", Fetch, 0, "url"),
    exact("requests.head", Fetch, 0, "url"),
    exact("requests.options", Fetch, 0, "url"),
    exact("requests.request", Fetch, 1, "url"),
    exact("httpx.get", Fetch, 0, "url"),
    exact("httpx.post", Fetch, 0, "url"),
    exact("httpx.put", Fetch, 0, "url"),
    exact("httpx.delete", Fetch, 0, "url"),
    exact("httpx.stream", Fetch, 1, "url"),
    exact("httpx.request", Fetch, 1, "url"),
    exact("urllib.request.urlopen", Fetch, 0, "url"),
    exact("urllib.request.Request", Fetch, 0, "url"),
    exact("urllib.urlopen", Fetch, 0, "url"),
    exact("urllib2.urlopen", Fetch, 0, "url"),
    exact("urllib2.Request", Fetch, 0, "url"),
    exact("http.client.HTTPConnection", Fetch, 0, "host"),
    exact("http.client.HTTPSConnection", Fetch, 0, "host"),
    exact("httplib.HTTPConnection", Fetch, 0, "host"),
    exact("pycurl.Curl.setopt", Fetch, 1, "value"),
];

/// The sink `name` (a resolved callee) is, if any: exact names first, then method names
/// matched on the last segment. Resolved once per call by the module model.
pub fn sink_for(name: &str) -> Option<&'static Sink> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    /// Sinks by exact name, and method sinks by their last segment.
    type Index = (
        HashMap<&'static str, &'static Sink>,
        HashMap<&'static str, &'static Sink>,
    );
    static INDEX: OnceLock<Index> = OnceLock::new();
    let (exact, methods) = INDEX.get_or_init(|| {
        let mut exact = HashMap::new();
        let mut methods = HashMap::new();
        for sink in SINKS {
            if sink.method {
                methods.insert(sink.name, sink);
            } else {
                exact.insert(sink.name, sink);
            }
        }
        (exact, methods)
    });
    if let Some(sink) = exact.get(name) {
        return Some(*sink);
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    methods.get(last).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_resolve_by_qualified_name_and_methods_by_last_segment() {
        assert_eq!(sink_for("os.system").map(|s| s.kind), Some(SinkKind::Shell));
        assert_eq!(
            sink_for("os.posix_spawn").map(|s| s.kind),
            Some(SinkKind::Exec)
        );
        assert_eq!(sink_for("cur.execute").map(|s| s.kind), Some(SinkKind::Sql));
        assert_eq!(sink_for("execute").map(|s| s.kind), Some(SinkKind::Sql));
        // Not the builtin: an `open` method of something else.
        assert!(sink_for("tarfile.open").is_none());
        assert!(sink_for("PIL.Image.open").is_none());
    }

    #[test]
    fn every_sink_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for sink in SINKS {
            assert!(seen.insert(sink.name), "{} listed twice", sink.name);
        }
    }
}
