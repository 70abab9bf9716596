//! The `hallpass` command: argh types (their doc comments are the help
//! text) and one short function per sub-command, each calling the library.
//! Errors are printed once, on stderr, and give exit code 1.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use hallpass::accounts;
use hallpass::admin::{system, tenants, users, Actor, Local, Page};
use hallpass::config::{Config, Flags};
use hallpass::{app, clock, db, jwt, mail, server, totp, Clock, Error};
use rusqlite::Connection;
use serde_json::json;

#[derive(FromArgs)]
/// hallpass: a self-hosted authentication server. One binary, one SQLite file.
struct Cli {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Serve(Serve),
    Init(Init),
    CheckConfig(CheckConfig),
    User(UserCmd),
    Client(ClientCmd),
    Tenant(TenantCmd),
    Apikey(ApikeyCmd),
    Keys(KeysCmd),
    Mail(MailCmd),
    Backup(Backup),
    Activity(ActivityCmd),
    Access(AccessCmd),
}

/// `println!` for the commands' output: when the reader has gone (`hallpass
/// user list | head -1`), stop quietly with status 0 instead of panicking
/// on the broken pipe as `println!` does.
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, $($arg)*) {
            quit_on_write_error(e);
        }
    }};
}

/// `print!` without the line end, as `out!`.
macro_rules! out_part {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = write!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            quit_on_write_error(e);
        }
    }};
}

/// Ends the process after a failed write to stdout: quietly for a closed
/// pipe (the reader wanted no more), with a message otherwise.
fn quit_on_write_error(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("hallpass: cannot write the output: {e}");
    std::process::exit(1);
}

macro_rules! common_flags {
    ($(#[$m:meta])* struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        struct $name {
            /// the TOML config file (or HALLPASS_CONFIG)
            #[argh(option)]
            config: Option<PathBuf>,
            /// the SQLite database (or HALLPASS_DB; default ./hallpass.db)
            #[argh(option)]
            db: Option<PathBuf>,
            $($body)*
        }
    };
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
/// Run the server (defaults: 127.0.0.1:8080, ./hallpass.db).
struct Serve {
    /// listen address, e.g. 0.0.0.0:8080 (port 0 = any free port)
    #[argh(option)]
    listen: Option<String>,
    /// public base URL used in links and as the default issuer
    #[argh(option)]
    public_url: Option<String>,
    /// worker threads (default 2 x cores, at least 4)
    #[argh(option)]
    workers: Option<usize>,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "init")]
/// Create the database, its key file and a signing key, then exit.
struct Init {}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "check-config")]
/// Validate the configuration and print it, secrets masked.
struct CheckConfig {
    /// listen address, as for serve
    #[argh(option)]
    listen: Option<String>,
    /// public base URL, as for serve
    #[argh(option)]
    public_url: Option<String>,
}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "user")]
/// Manage users.
struct UserCmd {
    #[argh(subcommand)]
    cmd: UserSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum UserSub {
    Add(UserAdd),
    List(UserList),
    Show(UserShow),
    Disable(UserDisable),
    Enable(UserEnable),
    Delete(UserDelete),
    SetPassword(UserSetPassword),
    ResetMfa(UserResetMfa),
    EnrollMfa(UserEnrollMfa),
    Unlink(UserUnlink),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
/// Add a user; the password comes from a prompt or --password-stdin.
struct UserAdd {
    /// the user's email address
    #[argh(positional)]
    email: String,
    /// a username to sign in with besides the email
    #[argh(option)]
    username: Option<String>,
    /// the display name
    #[argh(option)]
    name: Option<String>,
    /// make the user a server-wide admin
    #[argh(switch)]
    admin: bool,
    /// the tenant (name or id) to join; default "default"
    #[argh(option)]
    tenant: Option<String>,
    /// read the password from the first line of standard input
    #[argh(switch)]
    password_stdin: bool,
    /// create the user without a password (it cannot sign in with one)
    #[argh(switch)]
    no_password: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// List users.
struct UserList {
    /// machine-readable output
    #[argh(switch)]
    json: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "show")]
/// Show one user (USER = email, username or id).
struct UserShow {
    #[argh(positional)]
    user: String,
    /// machine-readable output
    #[argh(switch)]
    json: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "disable")]
/// Disable a user and end their sessions.
struct UserDisable {
    #[argh(positional)]
    user: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "enable")]
/// Enable a disabled user.
struct UserEnable {
    #[argh(positional)]
    user: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "delete")]
/// Delete a user with their sessions and memberships.
struct UserDelete {
    #[argh(positional)]
    user: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "set-password")]
/// Set a user's password (prompt or --password-stdin) and end their sessions.
struct UserSetPassword {
    #[argh(positional)]
    user: String,
    /// read the password from the first line of standard input
    #[argh(switch)]
    password_stdin: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "reset-mfa")]
/// Turn a user's two-factor authentication off (they lost their device).
struct UserResetMfa {
    #[argh(positional)]
    user: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "unlink")]
/// Unlink a user from an upstream provider (PROVIDER = its [providers.NAME]).
struct UserUnlink {
    #[argh(positional)]
    user: String,
    #[argh(positional)]
    provider: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "enroll-mfa")]
/// Enroll a user in TOTP here: shows the QR code, then asks for a code.
struct UserEnrollMfa {
    #[argh(positional)]
    user: String,
}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "client")]
/// Manage clients (the apps that sign users in).
struct ClientCmd {
    #[argh(subcommand)]
    cmd: ClientSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ClientSub {
    Add(ClientAdd),
    Update(ClientUpdateCmd),
    List(ClientList),
    Remove(ClientRemove),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
/// Add a client; prints client_id and (once) client_secret.
struct ClientAdd {
    #[argh(positional)]
    name: String,
    /// an allowed redirect URL (repeat for more)
    #[argh(option)]
    redirect_url: Vec<String>,
    /// where GET /logout/redirect sends the browser
    #[argh(option)]
    logout_redirect_url: Option<String>,
    /// a public client (no secret: SPAs, mobile apps; PKCE required)
    #[argh(switch)]
    public: bool,
    /// a scope the client may ask the OpenID provider for (repeat; default:
    /// openid profile email groups offline_access)
    #[argh(option)]
    scope: Vec<String>,
    /// where RP-initiated logout may send the browser back (repeat)
    #[argh(option)]
    post_logout_redirect_url: Vec<String>,
    /// no consent page for this app (the default)
    #[argh(switch)]
    first_party: bool,
    /// a person must consent before the provider answers this app
    #[argh(switch)]
    consent: bool,
    /// the id_token algorithm: ES256 or RS256 (default: the current key's)
    #[argh(option)]
    alg: Option<String>,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "update")]
/// Change a client's settings; a list given replaces the old one.
struct ClientUpdateCmd {
    #[argh(positional)]
    client_id: String,
    /// a new name
    #[argh(option)]
    name: Option<String>,
    /// an allowed redirect URL (repeat; replaces the list)
    #[argh(option)]
    redirect_url: Vec<String>,
    /// where GET /logout/redirect sends the browser ("" removes it)
    #[argh(option)]
    logout_redirect_url: Option<String>,
    /// a scope the client may ask for (repeat; replaces the list)
    #[argh(option)]
    scope: Vec<String>,
    /// where RP-initiated logout may return (repeat; replaces the list)
    #[argh(option)]
    post_logout_redirect_url: Vec<String>,
    /// no consent page for this app
    #[argh(switch)]
    first_party: bool,
    /// a person must consent before the provider answers this app
    #[argh(switch)]
    consent: bool,
    /// the id_token algorithm: ES256 or RS256 ("default": the current key's)
    #[argh(option)]
    alg: Option<String>,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// List clients: client_id, name, public or confidential, and the number
/// AuthUser carries as authClientId.
struct ClientList {
    /// machine-readable output
    #[argh(switch)]
    json: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "remove")]
/// Remove a client and everything issued to it.
struct ClientRemove {
    #[argh(positional)]
    client_id: String,
}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "tenant")]
/// Manage tenants.
struct TenantCmd {
    #[argh(subcommand)]
    cmd: TenantSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TenantSub {
    Add(TenantAdd),
    List(TenantList),
    AddUser(TenantAddUser),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
/// Add a tenant; prints tenant_id.
struct TenantAdd {
    #[argh(positional)]
    name: String,
    /// the magic-link callback URL ({} is replaced by the token)
    #[argh(option)]
    callback_url: Option<String>,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// List tenants.
struct TenantList {
    /// machine-readable output
    #[argh(switch)]
    json: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "add-user")]
/// Add a user to a tenant (or change their role there).
struct TenantAddUser {
    #[argh(positional)]
    tenant: String,
    #[argh(positional)]
    user: String,
    /// the user's role in the tenant (default user)
    #[argh(option, default = "String::from(\"user\")")]
    role: String,
}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "apikey")]
/// Manage tenant API keys.
struct ApikeyCmd {
    #[argh(subcommand)]
    cmd: ApikeySub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ApikeySub {
    Create(ApikeyCreate),
    List(ApikeyList),
    Revoke(ApikeyRevoke),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "create")]
/// Create an API key; prints it once.
struct ApikeyCreate {
    #[argh(positional)]
    name: String,
    /// the tenant (name or id) the key acts for
    #[argh(option)]
    tenant: String,
    /// a scope: users:read, users:write, auth:write, activity:read,
    /// clients:write, tenants:write, apikeys:write, keys:write, mail:write,
    /// audit:read, admin (repeat)
    #[argh(option)]
    scope: Vec<String>,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// List API keys (never the keys themselves).
struct ApikeyList {
    /// machine-readable output
    #[argh(switch)]
    json: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "revoke")]
/// Revoke an API key by the id `apikey list` shows.
struct ApikeyRevoke {
    #[argh(positional)]
    key_id: String,
}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "keys")]
/// Manage JWT signing keys.
struct KeysCmd {
    #[argh(subcommand)]
    cmd: KeysSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum KeysSub {
    List(KeysList),
    Rotate(KeysRotate),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// List signing keys: the current one and retired ones still published.
struct KeysList {
    /// machine-readable output
    #[argh(switch)]
    json: bool,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "rotate")]
/// Make a new current signing key; the old one stays published until its
/// last token expires. A running server picks it up within 5 seconds.
struct KeysRotate {}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "mail")]
/// The mail outbox: list it, retry a mail, send a test message.
struct MailCmd {
    #[argh(subcommand)]
    cmd: MailSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum MailSub {
    List(MailList),
    Retry(MailRetry),
    Test(MailTest),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// List mail, newest first: pending, sending, sent and failed (never a body).
struct MailList {
    /// machine-readable output
    #[argh(switch)]
    json: bool,
    /// show at most this many (default 100)
    #[argh(option, default = "100")]
    limit: usize,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "retry")]
/// Make a pending mail due now (a running server tries it within a second).
struct MailRetry {
    /// the mail's id, as `mail list` shows it
    #[argh(positional)]
    id: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "test")]
/// Send a test message to ADDRESS through the configured mail command, now,
/// and say what happened (exit status, stderr).
struct MailTest {
    #[argh(positional)]
    address: String,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "backup")]
/// Copy the database to FILE with SQLite's online backup (safe while the
/// server runs). Keep the master key file with it.
struct Backup {
    #[argh(positional)]
    file: PathBuf,
}
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "activity")]
/// The last sign-ins, refusals and logouts, newest first (login activity).
struct ActivityCmd {
    /// how many rows (default 20, at most 1000)
    #[argh(option, default = "20")]
    last: i64,
    /// only this user's (email, username or id)
    #[argh(option)]
    user: Option<String>,
    /// only rows with this outcome: success, failed (any refusal), or a
    /// refusal's code (invalid_credentials, user_inactive, ...)
    #[argh(option)]
    outcome: Option<String>,
    /// machine-readable output (LoginActivity objects, as the API's)
    #[argh(switch)]
    json: bool,
}
}

#[derive(FromArgs)]
#[argh(subcommand, name = "access")]
/// Forward-auth's access rules ([access] in the config).
struct AccessCmd {
    #[argh(subcommand)]
    cmd: AccessSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum AccessSub {
    Test(AccessTest),
}

common_flags! {
#[derive(FromArgs)]
#[argh(subcommand, name = "test")]
/// Say which rule matches URL and what it decides, for a user or anonymous.
struct AccessTest {
    /// the URL an app is asked at, e.g. https://app.home.example/admin
    #[argh(positional)]
    url: String,
    /// the user asking (email, username or id); default anonymous
    #[argh(option)]
    user: Option<String>,
    /// the request's method (default GET)
    #[argh(option, default = "String::from(\"GET\")")]
    method: String,
    /// the user's session has a second factor (default: password only)
    #[argh(switch)]
    two_factor: bool,
}
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!(
                "hallpass: an argument is not UTF-8: {}",
                bad.to_string_lossy()
            );
            return ExitCode::from(1);
        }
    };
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hallpass: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// Parses argv with argh, adding what argh does not know: `--version` and
/// `-V`, and `-h` for `--help`, on every command. argh reads the line
/// first, so a `-h` given as an option's value (`--name -h`) stays a value;
/// only a line argh refuses is read again with each `-h` before `--` as
/// `--help`. Help goes to stdout (exit 0), a refusal to stderr (exit 1).
fn parse(args: &[String]) -> Result<Cli, ExitCode> {
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let flags = rest.iter().position(|a| *a == "--").unwrap_or(rest.len());
    let mut early = match Cli::from_args(&["hallpass"], &rest) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    if early.status.is_err() {
        let before_dashes = rest.get(..flags).unwrap_or_default();
        // Only when argh stopped at the version flag itself: `user add
        // --name -V` is a missing email, not a version request (review).
        let at_version = ["-V", "--version"].iter().any(|f| {
            early
                .output
                .contains(&format!("Unrecognized argument: {f}"))
        });
        if at_version
            && before_dashes
                .iter()
                .any(|a| *a == "--version" || *a == "-V")
        {
            out!("hallpass {}", env!("CARGO_PKG_VERSION"));
            return Err(ExitCode::SUCCESS);
        }
        if before_dashes.contains(&"-h") {
            let help: Vec<&str> = rest
                .iter()
                .enumerate()
                .map(|(i, a)| if i < flags && *a == "-h" { "--help" } else { a })
                .collect();
            match Cli::from_args(&["hallpass"], &help) {
                Ok(cli) => return Ok(cli),
                Err(e) => early = e,
            }
        }
    }
    match early.status {
        Ok(()) => {
            out!("{}", early.output);
            Err(ExitCode::SUCCESS)
        }
        Err(()) => {
            eprintln!(
                "{}\nRun hallpass --help for more information.",
                early.output
            );
            Err(ExitCode::from(1))
        }
    }
}

/// The CLI says everything: it is the operator, not an anonymous client.
fn describe(e: &Error) -> String {
    match e {
        Error::Internal(m)
        | Error::BadRequest(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Forbidden(m) => m.clone(),
        other => other.to_string(),
    }
}

fn run(cmd: Command) -> Result<(), Error> {
    match cmd {
        Command::Serve(c) => serve(c),
        Command::Init(c) => init(c),
        Command::CheckConfig(c) => check_config(c),
        Command::User(u) => match u.cmd {
            UserSub::Add(c) => user_add(c),
            UserSub::List(c) => user_list(c),
            UserSub::Show(c) => user_show(c),
            UserSub::Disable(c) => user_status(c.config, c.db, &c.user, false),
            UserSub::Enable(c) => user_status(c.config, c.db, &c.user, true),
            UserSub::Delete(c) => user_delete(c),
            UserSub::SetPassword(c) => user_set_password(c),
            UserSub::ResetMfa(c) => user_reset_mfa(c),
            UserSub::EnrollMfa(c) => user_enroll_mfa(c),
            UserSub::Unlink(c) => user_unlink(c),
        },
        Command::Client(c) => match c.cmd {
            ClientSub::Add(c) => client_add(c),
            ClientSub::Update(c) => client_update(c),
            ClientSub::List(c) => client_list(c),
            ClientSub::Remove(c) => client_remove(c),
        },
        Command::Tenant(t) => match t.cmd {
            TenantSub::Add(c) => tenant_add(c),
            TenantSub::List(c) => tenant_list(c),
            TenantSub::AddUser(c) => tenant_add_user(c),
        },
        Command::Apikey(a) => match a.cmd {
            ApikeySub::Create(c) => apikey_create(c),
            ApikeySub::List(c) => apikey_list(c),
            ApikeySub::Revoke(c) => apikey_revoke(c),
        },
        Command::Keys(k) => match k.cmd {
            KeysSub::List(c) => keys_list(c),
            KeysSub::Rotate(c) => keys_rotate(c),
        },
        Command::Mail(m) => match m.cmd {
            MailSub::List(c) => mail_list(c),
            MailSub::Retry(c) => mail_retry(c),
            MailSub::Test(c) => mail_test(c),
        },
        Command::Backup(c) => backup(c),
        Command::Activity(c) => activity(c),
        Command::Access(a) => match a.cmd {
            AccessSub::Test(c) => access_test(c),
        },
    }
}

fn load(config: Option<PathBuf>, db: Option<PathBuf>, more: Flags) -> Result<Config, Error> {
    let flags = Flags { config, db, ..more };
    Config::load(&flags, &|k| std::env::var(k).ok())
}

/// The configuration and a migrated connection, for the admin commands.
/// The database must exist: only `init` and `serve` create one.
fn open(config: Option<PathBuf>, db: Option<PathBuf>) -> Result<(Config, Connection), Error> {
    let cfg = load(config, db, Flags::default())?;
    let mut conn = db::open_existing(&cfg.db)?;
    db::migrate(&mut conn)?;
    Ok((cfg, conn))
}

/// The files `init` and `serve` may create, noted before they start: the
/// database, its -wal and -shm, the master key file and the mail lock.
/// A start that fails removes the ones it made, but only when it made the
/// database: an existing database may already hold values sealed under a
/// key file just made, and its -wal may hold its last writes.
struct NewFiles {
    db_was_new: bool,
    absent: Vec<PathBuf>,
    /// An exclusive lock on the database's directory, held from `note` to
    /// the end of the start: two starts at once take turns, so the one
    /// that fails never removes files the other one made (review).
    _turn: Option<std::fs::File>,
}

impl NewFiles {
    fn note(cfg: &Config) -> NewFiles {
        let dir = match cfg.db.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let turn = std::fs::File::open(&dir).ok().filter(|f| f.lock().is_ok());
        let with = |suffix: &str| {
            let mut name = cfg.db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let mut files = vec![
            cfg.db.clone(),
            with("-wal"),
            with("-shm"),
            with("-journal"),
            mail::worker::lock_path(&cfg.db),
        ];
        if cfg.master_key.is_none() {
            files.push(cfg.master_key_file.clone());
        }
        let absent: Vec<PathBuf> = files
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_err())
            .collect();
        NewFiles {
            db_was_new: cfg.db.as_os_str() != ":memory:" && absent.contains(&cfg.db),
            absent,
            _turn: turn,
        }
    }

    /// Removes what was made since `note`, when the database was new.
    fn remove(&self) {
        if self.db_was_new {
            for p in &self.absent {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// What `serve` would refuse, found before anything is opened or created:
/// each a line to say, or an error. `check-config` says them all; `serve`
/// stops at the first error.
fn preflight(cfg: &Config) -> Vec<Result<String, Error>> {
    let mut out = vec![
        cfg.check_listen()
            .map(|()| format!("listen: {}", cfg.listen)),
        db::check(&cfg.db),
        app::check_master_key(cfg),
        mail::Templates::load(cfg.mail_templates.as_deref()).map(|_| match &cfg.mail_templates {
            Some(d) => format!("mail templates: {} (they parse)", d.display()),
            None => "mail templates: the built-in ones".into(),
        }),
    ];
    if let Some(path) = &cfg.web_logo {
        out.push(
            hallpass::web::pages::Logo::load(path)
                .map(|l| format!("web logo: {} ({})", path.display(), l.content_type)),
        );
    }
    if cfg.algorithm == jwt::Alg::Rs256 {
        let file = cfg
            .rsa_key_file
            .as_deref()
            .map(db::absolute)
            .unwrap_or_default();
        out.push(
            server::key_source(cfg)
                .map(|_| format!("tokens: RS256 with the key in {}", file.display()))
                .map_err(|e| {
                    Error::BadRequest(format!(
                        "tokens.rsa_key_file {}: {}",
                        file.display(),
                        describe(&e)
                    ))
                }),
        );
    }
    out
}

/// The mail command, found as `serve` will run it: the first word on PATH
/// (or a path), executable. Err says why mail would not go out.
fn check_mail_command(cfg: &Config) -> Result<String, String> {
    let Some(argv0) = cfg.mail_command.first() else {
        return Ok("mail: no command: the log mailer prints mail to stderr".into());
    };
    match mail::command::locate(argv0) {
        Some(p) if mail::command::is_executable(&p) => {
            Ok(format!("mail: command {} is executable", p.display()))
        }
        Some(p) => Err(format!(
            "mail: command {} exists but is not executable: mail would not be sent",
            p.display()
        )),
        None => Err(format!(
            "mail: command {argv0:?} is not found (PATH is searched for a bare name): \
             mail would not be sent"
        )),
    }
}

fn now() -> i64 {
    clock::system_now()
}

fn serve(c: Serve) -> Result<(), Error> {
    let more = Flags {
        listen: c.listen,
        public_url: c.public_url,
        workers: c.workers,
        ..Flags::default()
    };
    let cfg = load(c.config, c.db, more)?;
    // Everything serve would refuse, before it creates a file.
    for check in preflight(&cfg) {
        check?;
    }
    // Not refused: mail waits in the outbox (retried for 24 h) while the
    // command is installed.
    if let Err(warning) = check_mail_command(&cfg) {
        eprintln!("warning: {warning}");
    }
    // The handler goes in before anything is announced: a SIGTERM that
    // follows a "listening" line at once (a supervisor, a test) must stop
    // the server gracefully, not kill it by the default action.
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| Error::Internal(format!("cannot install the signal handler: {e}")))?;
    let made = NewFiles::note(&cfg);
    let running = hallpass::serve(cfg, Clock::System).inspect_err(|_| made.remove())?;
    drop(made);
    out!("listening on http://{}", running.addr);
    let _ = std::io::stdout().flush();
    // While serving, stderr lines go through the server's log thread: a
    // stderr nobody reads must not stop the server, nor its shutdown.
    let log = running.app.log.clone();
    if let Some(hint) = running.first_start_hint() {
        log.line(hint);
    }
    // Until a signal, or the listener's failure (checked every second).
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        rx.recv_timeout(std::time::Duration::from_secs(1))
    {
        if let Some(e) = running.listener_failed() {
            log.line(format!(
                "fatal: the listener stopped accepting connections ({e}); stopping"
            ));
            running.shutdown();
            return Err(Error::Internal(format!(
                "the listener failed: {e} (raise the open-files limit, e.g. LimitNOFILE=, if that was it)"
            )));
        }
    }
    log.line("shutting down: finishing in-flight requests".into());
    running.shutdown();
    Ok(())
}

fn init(c: Init) -> Result<(), Error> {
    let cfg = load(c.config, c.db, Flags::default())?;
    let source = server::key_source(&cfg)?;
    app::check_master_key(&cfg)?;
    let made = NewFiles::note(&cfg);
    let create = || -> Result<(), Error> {
        let mut conn = db::open_and_migrate(&cfg.db)?;
        let master = app::load_master_key(&cfg)?;
        let keep = server::key_keep_secs(&conn, cfg.access_ttl)?;
        jwt::ensure_current(&mut conn, &master, &source, keep, now()).map(|_| ())
    };
    create().inspect_err(|_| made.remove())?;
    drop(made);
    out!("database: {}", cfg.db.display());
    if cfg.master_key.is_none() {
        out!("master key file: {}", cfg.master_key_file.display());
    }
    Ok(())
}

fn check_config(c: CheckConfig) -> Result<(), Error> {
    let more = Flags {
        listen: c.listen,
        public_url: c.public_url,
        ..Flags::default()
    };
    let cfg = load(c.config, c.db, more)?;
    out_part!("{}", cfg.describe());
    // What was checked goes to stderr: stdout stays a file that parses.
    let mut problems: Vec<String> = Vec::new();
    for check in preflight(&cfg) {
        match check {
            Ok(line) => eprintln!("{line}"),
            Err(e) => problems.push(describe(&e)),
        }
    }
    match check_mail_command(&cfg) {
        Ok(line) => eprintln!("{line}"),
        Err(problem) => problems.push(problem),
    }
    for line in hallpass::social::kinds::setup_lines(cfg.public_url.as_deref(), &cfg.providers) {
        eprintln!("{line}");
    }
    for line in access_lines(&cfg) {
        eprintln!("{line}");
    }
    // One cause (an unreadable database) can fail two checks alike.
    problems.dedup();
    for p in &problems {
        eprintln!("error: {p}");
    }
    match problems.len() {
        0 => Ok(()),
        n => Err(Error::BadRequest(format!(
            "{n} problem{} in this configuration (above)",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

/// A new password: the first line of stdin with --password-stdin, else a
/// prompt without echo, asked twice. (The policy is checked by the core.)
fn read_new_password(from_stdin: bool) -> Result<String, Error> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(Error::BadRequest(
                "no terminal to prompt on: pass --password-stdin".into(),
            ));
        }
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Again: ")?;
        if a != b {
            return Err(Error::BadRequest("the passwords differ".into()));
        }
        a
    };
    Ok(pw)
}

/// The admin commands' store, and who they act as: the operating-system
/// account and host (written to the audit trail, source "cli").
fn admin_open(
    config: Option<PathBuf>,
    db: Option<PathBuf>,
) -> Result<(Config, Local, Actor), Error> {
    let (cfg, conn) = open(config, db)?;
    // The operating-system account: USER or LOGNAME, else its uid (a
    // shell or service without either still leaves a name to trace).
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|v| v.split_whitespace().next().map(|uid| format!("uid{uid}")))
                })
        })
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    Ok((cfg, Local { conn }, Actor::cli(&format!("{user}@{host}"))))
}

fn user_add(c: UserAdd) -> Result<(), Error> {
    let (cfg, mut db, actor) = admin_open(c.config, c.db)?;
    let password = if c.no_password {
        None
    } else {
        Some(read_new_password(c.password_stdin)?)
    };
    let new = users::NewAccount {
        email: Some(c.email),
        username: c.username,
        name: c.name,
        password,
        role: Some(if c.admin { "admin" } else { "user" }.into()),
        tenant: c.tenant,
    };
    let user = users::create(&mut db, &actor, new, cfg.pbkdf2_iterations)?;
    out!("user_id: {}", user.id);
    Ok(())
}

fn print_user(u: &accounts::User) {
    out!(
        "{}\t{}\t{}\t{}\t{}",
        u.id,
        u.email.as_deref().unwrap_or("-"),
        u.username.as_deref().unwrap_or("-"),
        u.role,
        u.status
    );
}

fn user_list(c: UserList) -> Result<(), Error> {
    let (_, db, actor) = admin_open(c.config, c.db)?;
    // Every user, a page at a time.
    let mut all = Vec::new();
    let mut page = Page::new(Some(Page::MAX), None)?;
    loop {
        let l = users::list(&db, &actor, None, page)?;
        let n = l.items.len() as i64;
        all.extend(l.items);
        if n < page.limit {
            break;
        }
        page.offset += n;
    }
    if c.json {
        out!(
            "{}",
            json!(all.iter().map(accounts::user_json).collect::<Vec<_>>())
        );
    } else {
        all.iter().for_each(print_user);
    }
    Ok(())
}

fn user_show(c: UserShow) -> Result<(), Error> {
    let (_, db, actor) = admin_open(c.config, c.db)?;
    let u = users::get(&db, &actor, &c.user)?;
    let v = users::detail(&db, &u)?;
    if c.json {
        out!("{v}");
    } else if let Some(obj) = v.as_object() {
        // For people: times as ISO 8601, tenants by name.
        for (k, val) in obj {
            let shown = match (k.as_str(), val) {
                (k, serde_json::Value::Number(n)) if k.ends_with("_at") => n
                    .as_i64()
                    .map(clock::iso8601)
                    .unwrap_or_else(|| n.to_string()),
                ("tenants", serde_json::Value::Array(ts)) => ts
                    .iter()
                    .map(|t| {
                        format!(
                            "{} ({}, {})",
                            t["name"].as_str().unwrap_or("?"),
                            t["role"].as_str().unwrap_or("?"),
                            t["tenant_id"].as_str().unwrap_or("?")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                ("identities", serde_json::Value::Array(ids)) => ids
                    .iter()
                    .map(|i| {
                        format!(
                            "{} (subject {}{})",
                            i["provider"].as_str().unwrap_or("?"),
                            i["subject"].as_str().unwrap_or("?"),
                            i["email"]
                                .as_str()
                                .map(|e| format!(", {e}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                (_, serde_json::Value::String(s)) => s.clone(),
                (_, other) => other.to_string(),
            };
            out!("{k}: {shown}");
        }
    }
    Ok(())
}

fn user_status(
    config: Option<PathBuf>,
    db: Option<PathBuf>,
    user: &str,
    active: bool,
) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(config, db)?;
    let u = users::set_active(&mut db, &actor, user, active)?;
    out!("{}: {}", u.display_name(), u.status);
    Ok(())
}

fn user_delete(c: UserDelete) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let u = users::delete(&mut db, &actor, &c.user)?;
    out!("{}: deleted", u.display_name());
    Ok(())
}

fn user_set_password(c: UserSetPassword) -> Result<(), Error> {
    let (cfg, mut db, actor) = admin_open(c.config, c.db)?;
    // Found first, so that a wrong USER is said before the prompt.
    let u = users::get(&db, &actor, &c.user)?;
    let pw = read_new_password(c.password_stdin)?;
    users::set_password(&mut db, &actor, &u.id, &pw, cfg.pbkdf2_iterations)?;
    out!(
        "{}: password set; their sessions were ended",
        u.display_name()
    );
    Ok(())
}

fn user_reset_mfa(c: UserResetMfa) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let (u, before) = users::reset_mfa(&mut db, &actor, &c.user)?;
    match before {
        totp::State::Off => out!("{}: two-factor authentication was not on", u.display_name()),
        _ => out!("{}: two-factor authentication turned off", u.display_name()),
    }
    Ok(())
}

fn user_unlink(c: UserUnlink) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let gone = users::unlink(&mut db, &actor, &c.user, &c.provider)?;
    out!(
        "{}: unlinked from {} (subject {})",
        c.user,
        gone.provider,
        gone.subject
    );
    Ok(())
}

fn user_enroll_mfa(c: UserEnrollMfa) -> Result<(), Error> {
    let (cfg, mut db, actor) = admin_open(c.config, c.db)?;
    let master = app::load_master_key(&cfg)?;
    let issuer = cfg
        .issuer
        .clone()
        .or(cfg.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let label = totp::issuer_label(&issuer);
    let (u, e) = users::start_mfa(&mut db, &actor, &master, &label, &c.user)?;
    out!("{}", totp::qr_terminal(&e.uri)?);
    out!("secret: {}", e.secret);
    out!("uri: {}", e.uri);
    eprint!("Scan the code (or type the secret), then enter the 6-digit code: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if !users::confirm_mfa(&mut db, &actor, &master, &u, line.trim())? {
        return Err(Error::BadRequest(
            "that code is not right; the enrollment stays pending for 10 minutes: run this again"
                .into(),
        ));
    }
    out!(
        "{}: two-factor authentication is on. Recovery codes (shown only now):",
        u.display_name()
    );
    for code in &e.recovery_codes {
        out!("  {code}");
    }
    Ok(())
}

fn client_add(c: ClientAdd) -> Result<(), Error> {
    let (cfg, mut db, actor) = admin_open(c.config, c.db)?;
    let ttls = accounts::Ttls {
        access: cfg.access_ttl,
        refresh: cfg.refresh_ttl,
        auth_code: cfg.auth_code_ttl,
    };
    let new = system::NewClient {
        name: c.name,
        redirect_urls: c.redirect_url,
        logout_redirect_url: c.logout_redirect_url,
        public: c.public,
        post_logout_redirect_urls: c.post_logout_redirect_url,
        scopes: c.scope,
        consent: consent_flag(c.first_party, c.consent)?.unwrap_or(false),
        token_alg: c.alg,
    };
    let (client, secret) = system::create_client(&mut db, &actor, &new, ttls)?;
    out!("client_id: {}", client.client_id);
    if let Some(s) = secret {
        out!("client_secret: {s}");
        eprintln!("(the secret is shown only now)");
    }
    Ok(())
}

/// `--first-party` / `--consent`: at most one.
fn consent_flag(first_party: bool, consent: bool) -> Result<Option<bool>, Error> {
    match (first_party, consent) {
        (true, true) => Err(Error::BadRequest(
            "--first-party and --consent contradict each other".into(),
        )),
        (true, false) => Ok(Some(false)),
        (false, true) => Ok(Some(true)),
        (false, false) => Ok(None),
    }
}

fn client_update(c: ClientUpdateCmd) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let change = system::ClientUpdate {
        name: c.name,
        redirect_urls: list(c.redirect_url),
        logout_redirect_url: c.logout_redirect_url.map(|u| (!u.is_empty()).then_some(u)),
        post_logout_redirect_urls: list(c.post_logout_redirect_url),
        scopes: list(c.scope),
        consent: consent_flag(c.first_party, c.consent)?,
        token_alg: c.alg.map(|a| (a != "default").then_some(a)),
    };
    let client = system::update_client(&mut db, &actor, &c.client_id, &change)?;
    out!("{}", json!(system::client_json(&client)));
    Ok(())
}

fn client_list(c: ClientList) -> Result<(), Error> {
    let (_, db, _) = admin_open(c.config, c.db)?;
    let clients = system::list_clients(&db)?;
    if c.json {
        let v: Vec<_> = clients.iter().map(system::client_json).collect();
        out!("{}", json!(v));
    } else {
        for c in clients {
            out!(
                "{}\t{}\t{}\t{}",
                c.client_id,
                c.name,
                if c.is_public() {
                    "public"
                } else {
                    "confidential"
                },
                c.num
            );
        }
    }
    Ok(())
}

fn client_remove(c: ClientRemove) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    system::delete_client(&mut db, &actor, &c.client_id)?;
    out!("{}: removed", c.client_id);
    Ok(())
}

fn tenant_add(c: TenantAdd) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let t = tenants::create(&mut db, &actor, &c.name, c.callback_url.as_deref())?;
    out!("tenant_id: {}", t.id);
    Ok(())
}

fn tenant_list(c: TenantList) -> Result<(), Error> {
    let (_, db, actor) = admin_open(c.config, c.db)?;
    let list = tenants::list(&db, &actor)?;
    if c.json {
        let v: Vec<_> = list.iter().map(tenants::tenant_json).collect();
        out!("{}", json!(v));
    } else {
        for t in list {
            out!("{}\t{}", t.id, t.name);
        }
    }
    Ok(())
}

fn tenant_add_user(c: TenantAddUser) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let m = tenants::set_member(&mut db, &actor, &c.tenant, &c.user, &c.role)?;
    out!("user_tenant_id: {}", m.id);
    Ok(())
}

fn apikey_create(c: ApikeyCreate) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    let (k, key) = tenants::create_api_key(&mut db, &actor, &c.name, &c.tenant, &c.scope)?;
    out!("key_id: {}", k.id);
    out!("api_key: {key}");
    eprintln!("(the key is shown only now)");
    Ok(())
}

fn apikey_list(c: ApikeyList) -> Result<(), Error> {
    let (_, db, actor) = admin_open(c.config, c.db)?;
    let keys = tenants::list_api_keys(&db, &actor)?;
    if c.json {
        let v: Vec<_> = keys.iter().map(tenants::api_key_json).collect();
        out!("{}", json!(v));
    } else {
        for k in keys {
            let state = if k.revoked_at.is_some() {
                "revoked"
            } else {
                "live"
            };
            out!(
                "{}\t{}\t{}\t{}\t{state}",
                k.id,
                k.name,
                k.tenant_id,
                k.scopes.join(",")
            );
        }
    }
    Ok(())
}

fn apikey_revoke(c: ApikeyRevoke) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    tenants::revoke_api_key(&mut db, &actor, &c.key_id)?;
    out!("{}: revoked", c.key_id);
    Ok(())
}

fn keys_list(c: KeysList) -> Result<(), Error> {
    let (cfg, db, _) = admin_open(c.config, c.db)?;
    let master = app::load_master_key(&cfg)?;
    let rows = system::list_keys(&db, &master)?;
    if c.json {
        out!("{}", json!(rows));
    } else {
        for k in rows {
            let state = if k.current {
                "current".to_string()
            } else {
                format!(
                    "retired, published until {}",
                    clock::iso8601(k.published_until.unwrap_or(0))
                )
            };
            out!("{}\t{}\t{state}", k.kid, k.alg);
        }
    }
    Ok(())
}

fn keys_rotate(c: KeysRotate) -> Result<(), Error> {
    let (cfg, mut db, actor) = admin_open(c.config, c.db)?;
    let master = app::load_master_key(&cfg)?;
    let keep = server::key_keep_secs(&db.conn, cfg.access_ttl)?;
    let source = server::key_source(&cfg)?;
    let kid = system::rotate_keys(&mut db, &actor, &master, &source, keep)?;
    out!("kid: {kid}");
    Ok(())
}

/// Copies the database to `file` in one step of SQLite's online backup:
/// one read transaction, which the server's writes do not disturb (WAL).
/// Copied a few pages per step instead, the backup starts over whenever
/// the server commits between two steps, and under a steady refresh load a
/// database of a few thousand pages was never copied (tests/it/recovery.rs).
fn copy_database(conn: &Connection, file: &std::path::Path) -> Result<(), Error> {
    let mut dst = Connection::open(file)?;
    let backup = rusqlite::backup::Backup::new(conn, &mut dst)?;
    // Busy or locked only for a moment (a writer of our own, WAL recovery).
    for _ in 0..100 {
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => return Ok(()),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    Err(Error::Internal("the database stayed locked for 5 s".into()))
}

fn backup(c: Backup) -> Result<(), Error> {
    let (cfg, conn) = open(c.config, c.db)?;
    db::create_new_private(&c.file)?; // 0600, and never through a symlink
    copy_database(&conn, &c.file)?;
    out!("backup: {}", c.file.display());
    if cfg.master_key.is_none() {
        eprintln!(
            "keep {} with it: without the master key the signing keys cannot be opened",
            cfg.master_key_file.display()
        );
    }
    Ok(())
}

fn mail_list(c: MailList) -> Result<(), Error> {
    let (_, db, _) = admin_open(c.config, c.db)?;
    let rows = system::list_mail(&db, c.limit)?;
    if c.json {
        out!("{}", json!(rows));
        return Ok(());
    }
    for m in rows {
        let when = match (m.status.as_str(), m.sent_at, m.next_attempt_at) {
            ("sent", Some(t), _) => format!("sent {}", clock::iso8601(t)),
            ("pending", _, Some(t)) => format!("next try {}", clock::iso8601(t)),
            _ => "-".into(),
        };
        out!(
            "{}\t{}\t{}\t{}\ttries {}\tqueued {}\t{when}\t{}{}",
            m.id,
            m.status,
            m.kind,
            m.to,
            m.attempts,
            clock::iso8601(m.created_at),
            m.subject,
            m.last_error
                .map(|e| format!("\tlast error: {}", e.replace('\n', " ")))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn mail_retry(c: MailRetry) -> Result<(), Error> {
    let (_, mut db, actor) = admin_open(c.config, c.db)?;
    match system::retry_mail(&mut db, &actor, &c.id)? {
        mail::outbox::Retried::Due => out!("{}: due now", c.id),
        mail::outbox::Retried::InDelivery => out!("{}: being delivered now", c.id),
    }
    Ok(())
}

/// Renders the `test` mail and runs the configured command on it here,
/// outside the outbox (nothing is queued), then reports.
fn mail_test(c: MailTest) -> Result<(), Error> {
    let cfg = load(c.config, c.db, Flags::default())?;
    if c.address.contains(['\r', '\n']) || !c.address.contains('@') {
        return Err(Error::BadRequest(format!(
            "{:?} is not an email address",
            c.address
        )));
    }
    let templates = mail::Templates::load(cfg.mail_templates.as_deref())?;
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let r = templates.render(
        &mail::Mail {
            kind: mail::Kind::Test,
            to: &c.address,
            values: &[],
        },
        &cfg.mail_product,
        &public_url,
    )?;
    let id = mail::message::message_id(
        &format!("test-{}", hallpass::crypto::uuid_v4()?),
        &cfg.mail_from,
    );
    let msg = mail::message::build(&mail::message::Envelope {
        from: &cfg.mail_from,
        to: &c.address,
        subject: &r.subject,
        text: &r.text,
        html: r.html.as_deref(),
        date: now(),
        message_id: &id,
    })?;
    if cfg.mail_command.is_empty() {
        out!("no [mail] command: the log mailer would print this message to stderr:");
        out_part!("{msg}");
        return Ok(());
    }
    let timeout = std::time::Duration::from_secs(cfg.mail_timeout_secs);
    out!("command: {}", cfg.mail_command.join(" "));
    let o = mail::command::run(&cfg.mail_command, msg.as_bytes(), timeout);
    match (&o.spawn_error, o.timed_out, o.status) {
        (Some(e), _, _) => out!("result: could not run it: {e}"),
        (_, true, _) => out!("result: killed after {} s", timeout.as_secs()),
        (_, _, Some(s)) => out!(
            "exit: {}",
            s.code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| s.to_string())
        ),
        _ => out!("result: ended without a status"),
    }
    if !o.stderr.trim().is_empty() {
        out!("stderr:");
        for line in o.stderr.trim_end().lines() {
            out!("  {line}");
        }
    }
    if o.sent() {
        out!("sent: the command took message <{id}> for {}", c.address);
        Ok(())
    } else {
        let argv0 = cfg.mail_command.first().map(String::as_str).unwrap_or("");
        Err(Error::Internal(format!(
            "not sent: {}",
            o.failure(argv0, timeout)
        )))
    }
}

/// `hallpass activity`: a table of the newest login_activity rows, with
/// each actor's email or username beside the id.
fn activity(c: ActivityCmd) -> Result<(), Error> {
    use hallpass::activity::{self, Recent};
    let (_, conn) = open(c.config, c.db)?;
    let user = match &c.user {
        Some(u) => Some(accounts::find_user(&conn, u)?),
        None => None,
    };
    let rows = activity::recent(
        &conn,
        &Recent {
            last: c.last,
            actor: user.as_ref().map(|u| u.id.as_str()),
            outcome: c.outcome.as_deref(),
        },
    )?;
    if c.json {
        let all: Vec<&str> = activity::FIELDS.iter().map(|f| f.name).collect();
        let list: Vec<serde_json::Value> = rows.iter().map(|r| r.to_json(&all)).collect();
        out!("{}", json!(list));
        return Ok(());
    }
    let mut names = std::collections::HashMap::new();
    out!("TIME                      TYPE     OUTCOME              USER                            IP               METHOD");
    for r in rows {
        let who = match &r.actor {
            Some(id) => {
                if !names.contains_key(id) {
                    let name = accounts::get_user(&conn, id)?
                        .map(|u| u.email.or(u.username).unwrap_or_else(|| id.clone()))
                        .unwrap_or_else(|| format!("{id} (deleted)"));
                    names.insert(id.clone(), name);
                }
                names.get(id).cloned().unwrap_or_default()
            }
            None => "(unknown name)".into(),
        };
        let method = r
            .token_payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .map(|p| {
                let amr: Vec<&str> = p["amr"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                format!(
                    "{} [{}]",
                    p["method"].as_str().unwrap_or("-"),
                    amr.join(",")
                )
            })
            .unwrap_or_else(|| "-".into());
        out!(
            "{:<25} {:<8} {:<20} {:<31} {:<16} {method}",
            clock::iso8601(r.login_time),
            r.login_type,
            r.outcome,
            who,
            r.ip_address.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

/// check-config's lines on the access rules: each in order, then the
/// default.
fn access_lines(cfg: &Config) -> Vec<String> {
    let a = &cfg.access;
    let mut out: Vec<String> = a
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| format!("access rule {}: {}", i + 1, r.summary()))
        .collect();
    out.push(format!(
        "access: no rule matching: {}{}",
        a.default_policy.name(),
        match &cfg.cookie_domain {
            Some(d) => format!("; the session cookie covers {d} and every host under it"),
            None =>
                "; no [web] cookie_domain: the session cookie reaches the sign-in host only".into(),
        }
    ));
    out
}

fn access_test(c: AccessTest) -> Result<(), Error> {
    use hallpass::forward::{self, Decision, Target, Who};
    let (cfg, who, groups) = match &c.user {
        Some(u) => {
            let (cfg, conn) = open(c.config, c.db)?;
            let user = accounts::find_user(&conn, u)?;
            let groups = forward::groups(&conn, &user)?;
            let amr: Vec<String> = if c.two_factor {
                vec!["pwd".into(), "otp".into()]
            } else {
                vec!["pwd".into()]
            };
            (cfg, Some(Who::new(user, &amr)), groups)
        }
        None => (load(c.config, c.db, Flags::default())?, None, Vec::new()),
    };
    let who_text = match &who {
        Some(w) => format!(
            "{} ({}; groups {})",
            w.user.display_name(),
            if w.two_factor {
                "with a second factor"
            } else {
                "password only"
            },
            groups.join(", ")
        ),
        None => "anonymous".into(),
    };
    // What /auth/verify answers a proxy asking about it: a request it
    // cannot read, or whose path an app may read otherwise than the rules
    // (`..`, `%2F`, ...), is 400, which every proxy takes as a deny.
    let target = match Target::from_url(&c.method, &c.url) {
        Ok(t) => t,
        Err(why) => {
            println!("request: {} {} as {who_text}", c.method, c.url);
            println!("decision: malformed request (400, a deny to the proxy): {why}");
            return Ok(());
        }
    };
    let v = forward::decide_with(&cfg.access, &target, who.as_ref(), &groups);
    println!(
        "request: {} {} (host {}, path {}) as {who_text}",
        target.method, target.url, target.host, target.path
    );
    // The rules read the path as given and in lower case; the stricter
    // reading decides, and says so when it is the lower-case one.
    let reading = if v.lower_case {
        format!(
            " (the path in lower case, {}, is the stricter reading)",
            target.path.to_ascii_lowercase()
        )
    } else {
        String::new()
    };
    match v.rule {
        Some(i) => println!("rule {}{reading}: {}", i + 1, cfg.access.rules[i].summary()),
        None => println!(
            "no rule matches{reading}: default_policy {}",
            cfg.access.default_policy.name()
        ),
    }
    let public = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let reachable = forward::safe_rd(&target.url, cfg.cookie_domain.as_deref(), &public).is_some();
    let decision = match v.decision {
        Decision::Allow(id) => format!(
            "allow (200): Remote-User {}, Remote-Groups {}",
            id.user, id.groups
        ),
        Decision::Bypass => "bypass (200, no sign-in, no user headers)".into(),
        Decision::Deny => "deny (403)".into(),
        Decision::NeedSignIn if reachable => "sign in first (to the sign-in page)".into(),
        Decision::NeedSecondFactor if reachable => {
            "second factor first (to the step-up page)".into()
        }
        Decision::NeedSignIn | Decision::NeedSecondFactor => format!(
            "refused (403): a sign-in is needed, but {} is outside [web] cookie_domain, so \
             the session cookie would never reach it",
            target.host
        ),
    };
    println!("decision: {decision}");
    Ok(())
}
