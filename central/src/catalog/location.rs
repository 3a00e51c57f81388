//! Where the catalog lives: `[catalog] url` in central.toml, or SQLite in the store directory.

use std::path::{Path, PathBuf};

use super::CatalogError;

/// Where the catalog lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// SQLite, one file per part (`central.db`, `users.db`, `audit.db`, `options.db`, `profiles.db`) in `dir`.
    Sqlite {
        /// The directory of the files.
        dir: PathBuf,
    },
    /// One PostgreSQL database, shared by every central node configured with it.
    Postgres {
        /// The connection URL (may hold a password: never log it, use [`CatalogLocation::describe`]).
        url: String,
    },
}

impl CatalogLocation {
    /// The location `url` names (`None`, `"sqlite"`: the files in `store_dir`; `"sqlite:DIR"`:
    /// the files in `DIR`; `"postgres://…"` or `"postgresql://…"`: that database).
    pub fn from_config(url: Option<&str>, store_dir: &Path) -> Result<CatalogLocation, CatalogError> {
        let Some(url) = url.map(str::trim) else {
            return Ok(CatalogLocation::Sqlite { dir: store_dir.to_owned() });
        };
        if url == "sqlite" {
            Ok(CatalogLocation::Sqlite { dir: store_dir.to_owned() })
        } else if let Some(dir) = url.strip_prefix("sqlite:").filter(|d| !d.is_empty()) {
            Ok(CatalogLocation::Sqlite { dir: PathBuf::from(dir) })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<postgres::Config>().map_err(|e| CatalogError::BadUrl(format!("{} ({e})", redact_url(url))))?;
            Ok(CatalogLocation::Postgres { url: url.to_owned() })
        } else {
            Err(CatalogError::BadUrl(redact_url(url)))
        }
    }

    /// Says where the catalog is, without a password.
    pub fn describe(&self) -> String {
        match self {
            CatalogLocation::Sqlite { dir } => format!("SQLite files in {}", dir.display()),
            CatalogLocation::Postgres { url } => format!("PostgreSQL at {}", redact_url(url)),
        }
    }
}

/// `url` without its password (in the user part or as a `password=` parameter), marked
/// `(password omitted)` when there was one.
pub fn redact_url(url: &str) -> String {
    let mut omitted = false;
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = rest_start..rest_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(userinfo.start + colon..userinfo.end, "");
                omitted = true;
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| {
                let secret = kv.to_ascii_lowercase().starts_with("password=");
                omitted |= secret;
                !secret
            })
            .collect();
        out = format!("{base}{}", kept.join("&"));
        if out.ends_with('?') {
            out.pop();
        }
    }
    if omitted { format!("{out} (password omitted)") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_forms_and_their_refusals() {
        let store = Path::new("/var/lib/central");
        let sqlite = CatalogLocation::Sqlite { dir: store.to_owned() };
        assert_eq!(CatalogLocation::from_config(None, store).unwrap(), sqlite);
        assert_eq!(CatalogLocation::from_config(Some("sqlite"), store).unwrap(), sqlite);
        assert_eq!(
            CatalogLocation::from_config(Some("sqlite:/srv/cat"), store).unwrap(),
            CatalogLocation::Sqlite { dir: "/srv/cat".into() }
        );
        let pg = CatalogLocation::from_config(Some("postgres://convoy:s3cret@db:5432/fleet"), store).unwrap();
        assert_eq!(pg.describe(), "PostgreSQL at postgres://convoy@db:5432/fleet (password omitted)");
        for bad in ["mysql://x/y", "sqlite:", "", "postgres://db:notaport/x"] {
            let e = CatalogLocation::from_config(Some(bad), store).unwrap_err().to_string();
            assert!(e.contains("[catalog] url"), "{bad}: {e}");
        }
        let e = CatalogLocation::from_config(Some("postgres://u:s3cret@db:x/y"), store).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("postgres://u:p@ss@h/d"), "postgres://u@h/d (password omitted)");
        assert_eq!(
            redact_url("postgresql://h/d?user=u&password=p&sslmode=disable"),
            "postgresql://h/d?user=u&sslmode=disable (password omitted)"
        );
        assert_eq!(redact_url("postgres://h/d?password=p"), "postgres://h/d (password omitted)");
    }
}
