//! Central's users: a name, a role, an argon2id hash of the password and, optionally, the
//! units the user may see; and the users' bearer tokens, kept only as SHA-256 digests. Both
//! live in the catalog (`<store>/users.db` when SQLite), which `central user add` and
//! `central token create` write while central runs.

use std::sync::OnceLock;

use serde::Serialize;

use crate::catalog::{CatalogDb, CatalogError, CatalogLocation, Migration, Row, Schema};

use crate::password::{self, PasswordError};

/// What a user may do; each role may do everything the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watch live video, timelines and playback.
    Viewer,
    /// Also retrieve, export and acknowledge alarms.
    Operator,
    /// Also change the configuration: recording options, users, units.
    Administrator,
}

impl Role {
    /// The role's name, as the CLI and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Administrator => "administrator",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "administrator" => Ok(Role::Administrator),
            _ => Err(format!("unknown role {s:?}: use administrator, operator or viewer")),
        }
    }
}

/// A user as the rest of central sees it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The user name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The only units the user may see; `None`: every unit.
    pub units: Option<Vec<String>>,
}

impl Account {
    /// Whether the user may see `unit` and anything about it.
    pub fn sees(&self, unit: &str) -> bool {
        self.units.as_ref().is_none_or(|units| units.iter().any(|u| u == unit))
    }
}

/// Why the users database failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The database failed.
    #[error("users database: {0}")]
    Db(CatalogError),
    /// A stored row does not decode (written by a newer central, or damaged).
    #[error("stored user {name:?} is unreadable ({message}); add the user again with `central user add --replace`")]
    Corrupt {
        /// The user.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The password breaks the policy, or cannot be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The user exists already (and was not to be replaced).
    #[error(
        "user {0:?} exists already; add --replace (in the API, \"replace\": true) to set its role, password and units anew"
    )]
    Exists(String),
    /// The request does not fit (bad name, unknown user); the message says what to do.
    #[error("{0}")]
    Refused(String),
}

// Not `#[from]`: the message already holds the catalog's, so it is no `source` to print twice.
impl From<CatalogError> for AccountsError {
    fn from(e: CatalogError) -> Self {
        AccountsError::Db(e)
    }
}

/// The users and their tokens (see the module documentation).
pub struct Accounts {
    db: CatalogDb,
}

/// The users' part of the catalog. Version 1 is the schema users.db always had.
pub const SCHEMA: Schema = Schema {
    part: "accounts",
    sqlite_file: "users.db",
    migrations: &[Migration {
        sqlite: "CREATE TABLE IF NOT EXISTS users (
                     name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
                     units TEXT, created_us INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS tokens (
                     digest TEXT PRIMARY KEY,
                     user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                     created_us INTEGER NOT NULL);",
        postgres: "CREATE TABLE users (
                       name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
                       units TEXT, created_us BIGINT NOT NULL);
                   CREATE TABLE tokens (
                       digest TEXT PRIMARY KEY,
                       \"user\" TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                       created_us BIGINT NOT NULL);",
    }],
};

/// A hash nobody's password matches, verified against when the user is unknown, so that a
/// wrong name takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| password::hash("decoy password, never used").unwrap_or_default())
}

/// Checks a user name: 1–64 letters, digits, `-`, `_`, `.` or `@`.
pub fn check_name(name: &str) -> Result<(), AccountsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccountsError::Refused(format!(
            "the user name {name:?} is not allowed: use 1–64 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Accounts {
    /// Opens (or creates) the users' part of the catalog at `at`.
    pub fn open(at: &CatalogLocation) -> Result<Accounts, AccountsError> {
        Ok(Accounts { db: CatalogDb::open(at, &SCHEMA)? })
    }

    /// How many users exist.
    pub fn count(&self) -> Result<i64, AccountsError> {
        Ok(self.db.query_one("SELECT count(*) FROM users", &[])?.get(0)?)
    }

    /// Adds user `name` (or, with `replace`, sets an existing user's role, password and units).
    /// `units`: the only units the user may see, `None` for all.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        units: Option<Vec<String>>,
        replace: bool,
    ) -> Result<(), AccountsError> {
        check_name(name)?;
        password::check_policy(name, password)?;
        if let Some(u) = units.iter().flatten().find(|u| u.trim().is_empty()) {
            return Err(AccountsError::Refused(format!("--unit {u:?} names no unit")));
        }
        let hash = password::hash(password)?;
        let units = units.map(|u| serde_json::to_string(&u).unwrap_or_default());
        let params = [name.into(), role.as_str().into(), hash.into(), units.into(), now_us().into()];
        // One statement either way, so that two nodes adding one name at once cannot both win.
        let sql = if replace {
            "INSERT INTO users (name, role, password_hash, units, created_us) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash,
                 units = excluded.units"
        } else {
            "INSERT INTO users (name, role, password_hash, units, created_us) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING"
        };
        if self.db.execute(sql, &params)? == 0 {
            return Err(AccountsError::Exists(name.to_owned()));
        }
        Ok(())
    }

    /// The user `name`, if it exists.
    pub fn account(&self, name: &str) -> Result<Option<Account>, AccountsError> {
        Ok(self.row(name)?.map(|(account, _)| account))
    }

    fn row(&self, name: &str) -> Result<Option<(Account, String)>, AccountsError> {
        let row = self.db.query_opt("SELECT role, units, password_hash FROM users WHERE name = $1", &[name.into()])?;
        let Some(row) = row else { return Ok(None) };
        let (role, units, hash): (String, Option<String>, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        Ok(Some((decode(name, &role, units.as_deref())?, hash)))
    }

    /// The user `name` if `password` is theirs; `None` for a wrong name or password (which
    /// take equally long).
    pub fn login(&self, name: &str, password: &str) -> Result<Option<Account>, AccountsError> {
        match self.row(name)? {
            Some((account, hash)) => Ok(password::verify(&hash, password).then_some(account)),
            None => {
                password::verify(decoy_hash(), password);
                Ok(None)
            }
        }
    }

    /// Makes a new bearer token for user `name`; only its digest is kept.
    pub fn create_token(&self, name: &str) -> Result<String, AccountsError> {
        let no_user = || {
            AccountsError::Refused(format!(
                "no user {name:?}: add it first with `central user add --config central.toml {name} --role ROLE`"
            ))
        };
        if self.account(name)?.is_none() {
            return Err(no_user());
        }
        let token = password::new_secret()?;
        // Inserted only while the user exists (another node may remove it meanwhile).
        let added = self.db.execute(
            "INSERT INTO tokens (digest, \"user\", created_us) SELECT $1, name, $3 FROM users WHERE name = $2",
            &[password::token_digest(&token).into(), name.into(), now_us().into()],
        )?;
        if added == 0 {
            return Err(no_user());
        }
        Ok(token)
    }

    /// The user whose bearer token this is, if any.
    pub fn by_token(&self, token: &str) -> Result<Option<Account>, AccountsError> {
        let row = self.db.query_opt(
            "SELECT u.name, u.role, u.units FROM tokens t JOIN users u ON u.name = t.\"user\" WHERE t.digest = $1",
            &[password::token_digest(token).into()],
        )?;
        row.as_ref().map(account_of).transpose()
    }

    /// Removes user `name` and its tokens (its sessions end at their next request); whether it
    /// existed.
    pub fn remove(&self, name: &str) -> Result<bool, AccountsError> {
        let removed = self.db.transaction(|tx| {
            tx.execute("DELETE FROM tokens WHERE \"user\" = $1", &[name.into()])?;
            tx.execute("DELETE FROM users WHERE name = $1", &[name.into()])
        })?;
        Ok(removed > 0)
    }

    /// Revokes every bearer token of user `name`; how many there were.
    pub fn revoke_tokens(&self, name: &str) -> Result<usize, AccountsError> {
        Ok(self.db.execute("DELETE FROM tokens WHERE \"user\" = $1", &[name.into()])? as usize)
    }

    /// Every user, by name.
    pub fn list(&self) -> Result<Vec<Account>, AccountsError> {
        let mut out = self
            .db
            .query("SELECT name, role, units FROM users", &[])?
            .iter()
            .map(account_of)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here, not by the database, whose text order depends on its locale.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// An account from a row of `name, role, units`.
fn account_of(row: &Row) -> Result<Account, AccountsError> {
    let (name, role, units): (String, String, Option<String>) = (row.get(0)?, row.get(1)?, row.get(2)?);
    decode(&name, &role, units.as_deref())
}

fn decode(name: &str, role: &str, units: Option<&str>) -> Result<Account, AccountsError> {
    let corrupt = |message: String| AccountsError::Corrupt { name: name.to_owned(), message };
    let role = role.parse::<Role>().map_err(corrupt)?;
    let units = units
        .map(serde_json::from_str::<Vec<String>>)
        .transpose()
        .map_err(|e| corrupt(format!("bad unit list: {e}")))?;
    Ok(Account { name: name.to_owned(), role, units })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users_log_in_with_their_password_and_tokens_are_kept_as_digests(at: &CatalogLocation) {
        let a = Accounts::open(at).unwrap();
        assert_eq!(a.count().unwrap(), 0);
        a.add("ann", Role::Viewer, "correct horse battery", Some(vec!["bus-1".into()]), false).unwrap();
        let ann = a.login("ann", "correct horse battery").unwrap().unwrap();
        assert_eq!(ann.role, Role::Viewer);
        assert!(ann.sees("bus-1") && !ann.sees("bus-2"));
        assert_eq!(a.login("ann", "wrong horse battery").unwrap(), None);
        assert_eq!(a.login("bob", "correct horse battery").unwrap(), None);
        let token = a.create_token("ann").unwrap();
        assert_eq!(a.by_token(&token).unwrap(), Some(ann));
        assert_eq!(a.by_token("nope").unwrap(), None);
        let stored: Vec<String> = ["SELECT digest FROM tokens", "SELECT password_hash FROM users"]
            .iter()
            .flat_map(|sql| a.db.query(sql, &[]).unwrap())
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(stored.len(), 2);
        assert!(
            stored.iter().all(|s| !s.contains(&token) && !s.contains("correct horse")),
            "no secret is stored in clear"
        );
        if let CatalogLocation::Sqlite { dir } = at {
            let bytes = std::fs::read(dir.join("users.db")).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&token) && !text.contains("correct horse"), "no secret in the file");
        }
        drop(a);
        let a = Accounts::open(at).unwrap();
        assert!(a.by_token(&token).unwrap().is_some(), "tokens survive a restart");
    }
    crate::on_both_backends!(
        users_log_in_with_their_password_and_tokens_are_kept_as_digests,
        super::users_log_in_with_their_password_and_tokens_are_kept_as_digests
    );

    fn removing_a_user_or_revoking_its_tokens_stops_the_tokens(at: &CatalogLocation) {
        let a = Accounts::open(at).unwrap();
        a.add("ann", Role::Viewer, "long enough pw", None, false).unwrap();
        let (t1, t2) = (a.create_token("ann").unwrap(), a.create_token("ann").unwrap());
        assert_eq!(a.revoke_tokens("ann").unwrap(), 2);
        assert_eq!((a.by_token(&t1).unwrap(), a.by_token(&t2).unwrap()), (None, None));
        let t3 = a.create_token("ann").unwrap();
        assert!(a.remove("ann").unwrap());
        assert_eq!(a.by_token(&t3).unwrap(), None);
        assert_eq!(a.account("ann").unwrap(), None);
        assert!(!a.remove("ann").unwrap());
    }
    crate::on_both_backends!(
        removing_a_user_or_revoking_its_tokens_stops_the_tokens,
        super::removing_a_user_or_revoking_its_tokens_stops_the_tokens
    );

    fn adding_refuses_bad_names_weak_passwords_and_existing_users(at: &CatalogLocation) {
        let a = Accounts::open(at).unwrap();
        assert!(a.add("bad name", Role::Viewer, "long enough pw", None, false).is_err());
        assert!(a.add("ann", Role::Viewer, "short", None, false).unwrap_err().to_string().contains("at least"));
        a.add("ann", Role::Viewer, "long enough pw", None, false).unwrap();
        let e = a.add("ann", Role::Operator, "long enough pw", None, false).unwrap_err().to_string();
        assert!(e.contains("--replace"), "{e}");
        a.add("ann", Role::Operator, "another long pw", None, true).unwrap();
        assert_eq!(a.account("ann").unwrap().unwrap().role, Role::Operator);
        assert!(a.login("ann", "another long pw").unwrap().is_some());
        assert!(a.create_token("bob").unwrap_err().to_string().contains("central user add"));
        assert!("root".parse::<Role>().unwrap_err().contains("administrator, operator or viewer"));
        a.add("Zed", Role::Viewer, "long enough pw", None, false).unwrap();
        a.add("bob", Role::Viewer, "long enough pw", None, false).unwrap();
        let names: Vec<String> = a.list().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["Zed", "ann", "bob"], "the same order on every backend");
    }
    crate::on_both_backends!(
        adding_refuses_bad_names_weak_passwords_and_existing_users,
        super::adding_refuses_bad_names_weak_passwords_and_existing_users
    );

    fn an_unreadable_row_is_an_error_not_a_panic(at: &CatalogLocation) {
        let a = Accounts::open(at).unwrap();
        a.db.execute("INSERT INTO users VALUES ('ann', 'king', 'x', NULL, 0), ('bob', 'viewer', 'x', '[1', 0)", &[])
            .unwrap();
        assert!(matches!(a.account("ann"), Err(AccountsError::Corrupt { .. })));
        assert!(matches!(a.account("bob"), Err(AccountsError::Corrupt { .. })));
        assert!(a.login("ann", "whatever pw").is_err());
        assert!(a.list().is_err());
    }
    crate::on_both_backends!(
        an_unreadable_row_is_an_error_not_a_panic,
        super::an_unreadable_row_is_an_error_not_a_panic
    );
}
