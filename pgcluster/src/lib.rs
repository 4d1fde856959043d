//! A private PostgreSQL cluster, started from the system's PostgreSQL binaries.
//!
//! `gatehouse` uses it when no database URL is configured, and test suites use it to talk
//! to a real PostgreSQL. The cluster lives in a data directory of its own (created with
//! `initdb` on first use, mode 700), listens on 127.0.0.1 on a port of its own and on a
//! Unix socket in its data directory, and is stopped when the [`PgCluster`] is dropped.
//!
//! It is locked down like a server: every role logs in with a password (SCRAM), random
//! per cluster and kept in `<data_dir>.passwords` (mode 600), so another local user can
//! neither log in nor turn row-level security off; and it syncs what it commits (`fsync`
//! on), so a committed audit record survives an OS crash.
//!
//! PostgreSQL refuses to run as root: when this process is root, the cluster runs as the
//! `postgres` system user, which must be able to reach the data directory. Folders this
//! crate creates are mode 700 (711 for the folders above the data directory when it runs
//! as root: passable, not listable); folders that exist are never widened.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_core::secret_file::{create_private_dir, is_root};

/// Why the cluster could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `initdb`, `pg_ctl` or `postgres` is not installed.
    #[error(
        "PostgreSQL server binaries not found (looked on PATH and in /usr/lib/postgresql/*/bin): install postgresql"
    )]
    NotInstalled,
    /// A PostgreSQL tool failed.
    #[error("{tool} failed: {output}")]
    Tool {
        /// The tool.
        tool: String,
        /// What it printed.
        output: String,
    },
    /// The `postgres` system user cannot reach the data directory (running as root).
    #[error(
        "the postgres user cannot reach {0}: give it search permission (o+x) or choose a data directory under a folder it can pass"
    )]
    Unreachable(PathBuf),
    /// The server did not accept connections in time.
    #[error("PostgreSQL did not start within {0:?}; see {1}")]
    Timeout(Duration, PathBuf),
    /// File system trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Connection URLs of a provisioned database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The owner of the tables: for migrations.
    pub owner_url: String,
    /// The application role: `NOSUPERUSER NOBYPASSRLS`, owns nothing.
    pub app_url: String,
}

/// A running private cluster.
#[derive(Debug)]
pub struct PgCluster {
    data_dir: PathBuf,
    bin: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    passwords: Passwords,
}

/// The roles' passwords: random per cluster, kept beside its data directory.
struct Passwords {
    superuser: String,
    owner: String,
    app: String,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords(..)")
    }
}

/// The roles Gatehouse provisions: the tables' owner (migrations) and the application.
const OWNER_ROLE: &str = "gatehouse_owner";
const APP_ROLE: &str = "gatehouse_app";

impl Passwords {
    /// The file that keeps the passwords of the cluster in `data_dir`.
    fn file(data_dir: &Path) -> PathBuf {
        let mut name = data_dir.as_os_str().to_owned();
        name.push(".passwords");
        PathBuf::from(name)
    }

    /// The passwords in `file`; `None` when it does not exist.
    fn read(file: &Path) -> Result<Option<Self>, ClusterError> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let get = |role: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(role)?.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| ClusterError::Tool {
                    tool: "setup".into(),
                    output: format!("{} has no password for {role}", file.display()),
                })
        };
        Ok(Some(Self {
            superuser: get("postgres")?,
            owner: get(OWNER_ROLE)?,
            app: get(APP_ROLE)?,
        }))
    }

    /// New random passwords, written to `file` (mode 600, never over an existing one).
    fn create(file: &Path) -> Result<Self, ClusterError> {
        let random = || format!("{:032x}", rand::random::<u128>());
        let passwords = Self {
            superuser: random(),
            owner: random(),
            app: random(),
        };
        let text = format!(
            "postgres {}\n{OWNER_ROLE} {}\n{APP_ROLE} {}\n",
            passwords.superuser, passwords.owner, passwords.app
        );
        gatehouse_core::secret_file::create_secret_file(file, text.as_bytes())?;
        Ok(passwords)
    }
}

impl PgCluster {
    /// Starts the cluster in `data_dir` (initialising it when empty) on `port` (a free one
    /// when `None`), and waits until it accepts connections.
    ///
    /// # Errors
    /// [`ClusterError`] when the binaries are missing or the cluster cannot start.
    pub fn start(data_dir: &Path, port: Option<u16>) -> Result<Self, ClusterError> {
        let bin = find_binaries().ok_or(ClusterError::NotInstalled)?;
        let owner = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        create_dirs(data_dir)?;
        let data_dir = data_dir.canonicalize()?;
        if let Some((uid, gid)) = owner {
            chown_tree(&data_dir, uid, gid)?;
            if let Some(closed) = first_closed_ancestor(&data_dir)? {
                return Err(ClusterError::Unreachable(closed));
            }
        }
        let port = match port {
            Some(p) => p,
            None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let file = Passwords::file(&data_dir);
        let initialized = data_dir.join("PG_VERSION").exists();
        // A cluster from before passwords trusted local connections: it is locked below.
        let trusting = initialized
            && std::fs::read_to_string(data_dir.join("pg_hba.conf"))?
                .lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains("trust"));
        let passwords = match Passwords::read(&file)? {
            Some(passwords) => passwords,
            None if initialized && !trusting => {
                return Err(ClusterError::Tool {
                    tool: "setup".into(),
                    output: format!(
                        "{} is missing: the cluster in {} cannot be logged into without it",
                        file.display(),
                        data_dir.display()
                    ),
                });
            }
            None => Passwords::create(&file)?,
        };
        let cluster = Self {
            data_dir,
            bin,
            port,
            owner,
            passwords,
        };
        if !initialized {
            cluster.initdb()?;
        } else {
            if cluster.data_dir.join("postmaster.pid").exists() {
                // Left running by a process that was killed: stop it and start afresh.
                let _ = cluster.stop();
            }
            if trusting {
                // Give the superuser its password while the cluster still lets us in, then
                // lock it (until pg_hba.conf is rewritten, this runs again at each start).
                cluster.launch()?;
                let password = &cluster.passwords.superuser;
                cluster.execute(
                    "postgres",
                    &format!(
                        "SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD '{password}';"
                    ),
                )?;
                cluster.stop()?;
            }
        }
        cluster.write_hba()?;
        cluster.launch()?;
        Ok(cluster)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A URL for the superuser `postgres` to database `db`, with its password.
    pub fn superuser_url(&self, db: &str) -> String {
        self.url("postgres", &self.passwords.superuser, db)
    }

    /// A URL for `role` with `password` to database `db`, over TCP on loopback.
    fn url(&self, role: &str, password: &str, db: &str) -> String {
        format!("postgres://{role}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL in database `db` as the superuser (with `psql`, stopping at the first error).
    ///
    /// # Errors
    /// [`ClusterError::Tool`] with psql's message.
    pub fn execute(&self, db: &str, sql: &str) -> Result<(), ClusterError> {
        self.psql(db, &["-v", "ON_ERROR_STOP=1", "-q"], sql)
            .map(drop)
    }

    /// The unaligned, header-less output of a query.
    fn query_one(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        self.psql(db, &["-tA"], sql)
    }

    /// Runs `sql` with psql as the superuser. The SQL goes on standard input, never on the
    /// command line, which every local user can read (it may hold passwords).
    fn psql(&self, db: &str, args: &[&str], sql: &str) -> Result<String, ClusterError> {
        use std::io::Write as _;
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", db];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-f", "-"]);
        let mut command = self.command("psql", &all);
        command
            .env("PGPASSWORD", &self.passwords.superuser)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(sql.as_bytes())?;
        }
        finished(child.wait_with_output()?, "psql")
    }

    /// Creates (once) the database `db`, owned by the role `gatehouse_owner` (which runs
    /// migrations), and the application role `gatehouse_app` (`NOSUPERUSER NOBYPASSRLS`,
    /// owning nothing). Returns the owner's and the application's URLs.
    ///
    /// # Errors
    /// [`ClusterError::Tool`] when the SQL fails.
    pub fn provision(&self, db: &str) -> Result<Provisioned, ClusterError> {
        let Passwords { owner, app, .. } = &self.passwords;
        // The passwords file is the truth: they are set at every provisioning.
        self.execute(
            "postgres",
            &format!(
                "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN \
                 CREATE ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE; END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN \
                 CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB; END IF; \
             END $$; \
             SET password_encryption = 'scram-sha-256'; \
             ALTER ROLE {OWNER_ROLE} PASSWORD '{owner}'; \
             ALTER ROLE {APP_ROLE} PASSWORD '{app}';"
            ),
        )?;
        let exists = self.query_one(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )?;
        if exists.trim() == "0" {
            self.execute(
                "postgres",
                &format!("CREATE DATABASE \"{db}\" OWNER gatehouse_owner"),
            )?;
            self.execute(db, "REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA public TO gatehouse_app")?;
        }
        Ok(Provisioned {
            owner_url: self.url(OWNER_ROLE, owner, db),
            app_url: self.url(APP_ROLE, app, db),
        })
    }

    /// Stops the server (fast shutdown); the data directory stays.
    ///
    /// # Errors
    /// [`ClusterError::Tool`] if `pg_ctl stop` fails.
    pub fn stop(&self) -> Result<(), ClusterError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["stop", "-D", &dir, "-m", "fast", "-w", "-t", "30"],
        )
        .map(drop)
    }

    /// Starts a stopped server again, on the same port.
    ///
    /// # Errors
    /// [`ClusterError`] when it does not come up.
    pub fn restart(&self) -> Result<(), ClusterError> {
        self.launch()
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        // The superuser's password, for initdb to read: beside the data directory (which
        // initdb needs empty), readable by the cluster's user only, removed at once.
        let mut pwfile = self.data_dir.as_os_str().to_owned();
        pwfile.push(".initdb-password");
        let pwfile = PathBuf::from(pwfile);
        let _ = std::fs::remove_file(&pwfile);
        gatehouse_core::secret_file::create_secret_file(
            &pwfile,
            self.passwords.superuser.as_bytes(),
        )?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
        }
        let pwfile_arg = format!("--pwfile={}", pwfile.display());
        let done = self.run(
            "initdb",
            &[
                "-D",
                &dir,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &pwfile_arg,
                "--encoding=UTF8",
            ],
        );
        std::fs::remove_file(&pwfile)?;
        done.map(drop)
    }

    /// Client authentication: a password (SCRAM) for every role, over the socket in the
    /// data directory and over loopback; nothing else. Written at every start, so a
    /// cluster from before passwords is locked too.
    fn write_hba(&self) -> Result<(), ClusterError> {
        let hba = self.data_dir.join("pg_hba.conf");
        std::fs::write(
            &hba,
            "# Written by Gatehouse at every start: every role logs in with its password.\n\
             local all all scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n",
        )?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&hba, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    fn launch(&self) -> Result<(), ClusterError> {
        let dir = self.data_dir.to_string_lossy().into_owned();
        let log = self.data_dir.join("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port, dir
        );
        let log_arg = log.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &[
                "start", "-D", &dir, "-l", &log_arg, "-o", &options, "-w", "-t", "60",
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ClusterError::Timeout(Duration::from_secs(30), log))
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin.join(tool));
        command
            .args(args)
            .stdin(Stdio::null())
            .env_remove("PGPASSWORD")
            .current_dir(&self.data_dir);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Runs a PostgreSQL tool; its standard output on success.
    fn run(&self, tool: &str, args: &[&str]) -> Result<String, ClusterError> {
        output(self.command(tool, args), tool)
    }
}

/// Runs `command` (the PostgreSQL tool `tool`); its standard output on success.
fn output(mut command: Command, tool: &str) -> Result<String, ClusterError> {
    finished(command.output()?, tool)
}

/// The standard output of a finished tool, or its error.
fn finished(out: std::process::Output, tool: &str) -> Result<String, ClusterError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ClusterError::Tool {
            tool: tool.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| has_all(d)) {
        // Follow a symlinked initdb to its installation, which also has psql.
        let real = dir.join("initdb").canonicalize().ok();
        return real
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .filter(|d| has_all(d))
            .or(Some(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has_all(d))
        .collect();
    versions.sort();
    versions.pop()
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32), ClusterError> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| ClusterError::Tool {
            tool: "setup".into(),
            output: "running as root needs a `postgres` system user to run the cluster as".into(),
        })
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// Creates `data_dir` (mode 700) and the folders above it that are missing (see
/// [`create_private_dir`]: 711 when root, so that the `postgres` user passes them).
fn create_dirs(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if let Some(parent) = data_dir.parent() {
        create_private_dir(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// The first folder above `dir` that others may not pass (no `o+x`): the `postgres` user
/// could not reach the data directory through it. Never changed here: widening a folder
/// the user made private is not this crate's call.
fn first_closed_ancestor(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)?.permissions().mode();
        if mode & 0o001 == 0 {
            return Ok(Some(ancestor.to_path_buf()));
        }
    }
    Ok(None)
}

/// A temporary folder for a test or a bench to start clusters in: passable by others
/// (mode 711), so that the `postgres` user reaches a cluster in it when tests run as root.
///
/// # Errors
/// The I/O error.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("gatehouse-pg-")
        .permissions(std::fs::Permissions::from_mode(0o711))
        .tempdir()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn starts_stops_and_restarts_a_real_cluster() {
        let tmp = scratch_dir().unwrap();
        let cluster = PgCluster::start(&tmp.path().join("pg"), None).unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());
        cluster.stop().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_err());
        cluster.restart().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port())).is_ok());
        let urls = cluster.provision("gatehouse").unwrap();
        assert_eq!(
            urls,
            cluster.provision("gatehouse").unwrap(),
            "provisioning twice is harmless"
        );
        assert!(urls.app_url.starts_with("postgres://gatehouse_app:"));
        let app_is_plain = cluster
            .query_one(
                "postgres",
                "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'gatehouse_app'",
            )
            .unwrap();
        assert_eq!(app_is_plain.trim(), "f");
    }

    /// A connection attempt as `role` with `password` (none: no password at all), over
    /// loopback or, with `socket`, the Unix socket in the data directory.
    fn login(cluster: &PgCluster, role: &str, password: Option<&str>, socket: bool) -> bool {
        let port = cluster.port().to_string();
        let dir = cluster.data_dir().to_string_lossy().into_owned();
        let host = if socket { dir.as_str() } else { "127.0.0.1" };
        let args = [
            "-w", "-h", host, "-p", &port, "-U", role, "-d", "postgres", "-c", "SELECT 1",
        ];
        let mut command = cluster.command("psql", &args);
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        output(command, "psql").is_ok()
    }

    #[test]
    fn a_cluster_lets_in_only_those_with_its_passwords_and_syncs_what_it_commits() {
        let tmp = scratch_dir().unwrap();
        let data_dir = tmp.path().join("state/pg");
        let cluster = PgCluster::start(&data_dir, None).unwrap();
        cluster.provision("gatehouse").unwrap();
        let superuser = cluster.passwords.superuser.clone();
        for socket in [false, true] {
            for role in ["postgres", OWNER_ROLE, APP_ROLE] {
                assert!(
                    !login(&cluster, role, None, socket),
                    "{role} without a password"
                );
                assert!(
                    !login(&cluster, role, Some("guess"), socket),
                    "{role} guessing"
                );
            }
            assert!(login(&cluster, "postgres", Some(&superuser), socket));
        }
        let app = cluster.passwords.app.clone();
        assert!(login(&cluster, APP_ROLE, Some(&app), false));
        assert_eq!(
            cluster.query_one("postgres", "SHOW fsync").unwrap().trim(),
            "on"
        );

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cluster.data_dir), 0o700);
        assert_eq!(mode(&Passwords::file(&cluster.data_dir)), 0o600);
        let created = cluster.data_dir.parent().unwrap();
        assert_eq!(mode(created), if is_root() { 0o711 } else { 0o700 });

        // Started again, the same passwords let the same roles in.
        drop(cluster);
        let again = PgCluster::start(&data_dir, None).unwrap();
        assert!(login(&again, "postgres", Some(&superuser), false));
        assert!(login(&again, APP_ROLE, Some(&app), false));
    }

    #[test]
    fn a_trusting_cluster_from_before_passwords_is_locked_at_its_next_start() {
        let tmp = scratch_dir().unwrap();
        let data_dir = tmp.path().join("pg");
        let cluster = PgCluster::start(&data_dir, None).unwrap();
        // What older versions left: trust for everyone, and no passwords file.
        std::fs::write(
            cluster.data_dir.join("pg_hba.conf"),
            "host all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        cluster.stop().unwrap();
        let port = cluster.port();
        std::fs::remove_file(Passwords::file(&cluster.data_dir)).unwrap();
        std::mem::forget(cluster);
        let locked = PgCluster::start(&data_dir, Some(port)).unwrap();
        assert!(!login(&locked, "postgres", None, false));
        let superuser = locked.passwords.superuser.clone();
        assert!(login(&locked, "postgres", Some(&superuser), false));

        // A locked cluster whose passwords file is lost is refused, not re-passworded.
        locked.stop().unwrap();
        std::fs::remove_file(Passwords::file(&locked.data_dir)).unwrap();
        std::mem::forget(locked);
        let err = PgCluster::start(&data_dir, Some(port)).unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_data_directory_the_postgres_user_cannot_reach_is_refused_not_opened() {
        if !is_root() {
            return; // Only root runs the cluster as another user.
        }
        let private = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .unwrap();
        let before = mode_of(private.path());
        let err = PgCluster::start(&private.path().join("pg"), None).unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable(_)), "{err}");
        assert_eq!(mode_of(private.path()), before, "never widened");
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
}
