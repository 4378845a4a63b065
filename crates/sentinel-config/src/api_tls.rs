//! `api.tls`: the HTTP API (and the dashboard) served over TLS (off when null).
//!
//! `cert` is a PEM file holding the certificate chain (the server's certificate first), `key` a PEM
//! file holding its private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519). `min_version` is the
//! oldest protocol accepted, `1.2` (the default) or `1.3`. Unlike the rest of the validation, this
//! reads both files, as `sentinel config check` must find what would stop the daemon: each must be
//! readable, hold PEM that parses, and the key must be the certificate's; a key file readable by
//! group or others is refused, as sshd refuses such a host key. The same checks ([`read_tls_files`],
//! [`certified_key`]) run when the API reloads the files after they change.

use crate::reader::{Node, Reader};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The oldest TLS version the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// `api.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate (mode 0600 or stricter).
    pub key: PathBuf,
    /// The oldest protocol version accepted.
    pub min_version: TlsVersion,
}

const KEYS: &[&str] = &["cert", "key", "min_version"];

/// Which file a [`TlsFileError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The certificate chain (`api.tls.cert`).
    Cert,
    /// The private key (`api.tls.key`).
    Key,
}

impl TlsFile {
    /// The configuration key naming the file.
    pub fn key_path(self) -> &'static str {
        match self {
            TlsFile::Cert => "api.tls.cert",
            TlsFile::Key => "api.tls.key",
        }
    }
}

/// Why the certificate or its key cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFileError {
    /// The file at fault.
    pub file: TlsFile,
    /// What is wrong with it, for a human (never shows key material).
    pub message: String,
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.key_path(), self.message)
    }
}

impl std::error::Error for TlsFileError {}

fn fail(file: TlsFile, message: String) -> TlsFileError {
    TlsFileError { file, message }
}

/// The two files as read, not yet parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate file's bytes.
    pub cert_pem: Vec<u8>,
    /// The key file's bytes.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"***")
            .finish()
    }
}

/// Reads the certificate and key files; a key file readable by group or others is refused.
pub fn read_tls_files(cert: &Path, key: &Path) -> Result<TlsFiles, TlsFileError> {
    let cert_pem = std::fs::read(cert).map_err(|e| {
        fail(
            TlsFile::Cert,
            format!("cannot read {}: {e}", cert.display()),
        )
    })?;
    let key_pem = read_private(key)?;
    Ok(TlsFiles { cert_pem, key_pem })
}

/// Reads the key file, refusing one that group or others may read (the mode is checked on the open
/// file, so a file swapped in between cannot slip past).
fn read_private(key: &Path) -> Result<Vec<u8>, TlsFileError> {
    use std::io::Read;
    let err = |e: std::io::Error| fail(TlsFile::Key, format!("cannot read {}: {e}", key.display()));
    let mut f = std::fs::File::open(key).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata().map_err(err)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(fail(
                TlsFile::Key,
                format!(
                    "{} is readable by group or others (mode {:04o}); a private key must be \
                     private: chmod 600 it (refused, as sshd refuses such a key)",
                    key.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(err)?;
    Ok(out)
}

/// Parses the files into what the server presents: the chain, and the private key checked to be
/// the first certificate's.
pub fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsFileError> {
    let mut chain = Vec::new();
    for c in CertificateDer::pem_slice_iter(&files.cert_pem) {
        match c {
            Ok(c) => chain.push(c),
            Err(e) => {
                return Err(fail(
                    TlsFile::Cert,
                    format!("not a PEM certificate chain ({e})"),
                ))
            }
        }
    }
    if chain.is_empty() {
        return Err(fail(
            TlsFile::Cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key_pem).map_err(|e| {
        fail(
            TlsFile::Key,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned()
                }
                _ => "not a PEM private key".to_owned(),
            },
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let provider_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(TlsFile::Key, format!("unusable private key ({e})")))?;
    let ck = CertifiedKey::new(chain, provider_key);
    match ck.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(fail(
            TlsFile::Key,
            "is not the key of the certificate in api.tls.cert (their public keys differ)".into(),
        )),
        Err(e) => Err(fail(
            TlsFile::Cert,
            format!("the first certificate does not parse ({e})"),
        )),
    }
}

/// Reads `api.tls` (`Some(None)`: absent or null, plain HTTP); with both paths valid, the files
/// are read and checked.
pub(crate) fn read(r: &mut Reader, api: Option<&Node<'_>>) -> Option<Option<TlsConfig>> {
    let api = api?;
    let Some(n) = r.optional(api, "tls") else {
        return Some(None);
    };
    if !r.known_keys(&n, KEYS) {
        return None;
    }
    let path = |r: &mut Reader, key: &str| -> Option<(PathBuf, String)> {
        let v = r.get(Some(&n), key)?;
        match r.optional_path(&v)? {
            Some(p) => Some((p, v.path)),
            None => {
                r.fail(&v.path, "is required with api.tls (null turns TLS off)");
                None
            }
        }
    };
    let cert = path(r, "cert");
    let key = path(r, "key");
    let min_version = match r.optional(&n, "min_version") {
        None => Some(TlsVersion::V1_2),
        Some(v) => {
            // `1.2` unquoted in YAML is a number; from the environment it is a string.
            let text = match v.value {
                serde_json::Value::String(s) => Some(s.trim().to_owned()),
                serde_json::Value::Number(x) => Some(x.to_string()),
                _ => None,
            };
            match text.as_deref() {
                Some("1.2") => Some(TlsVersion::V1_2),
                Some("1.3") => Some(TlsVersion::V1_3),
                _ => {
                    r.fail(&v.path, "must be \"1.2\" or \"1.3\"");
                    None
                }
            }
        }
    };
    let ((cert, cert_at), (key, key_at)) = (cert?, key?);
    let at = |f: TlsFile| match f {
        TlsFile::Cert => cert_at.as_str(),
        TlsFile::Key => key_at.as_str(),
    };
    let checked = read_tls_files(&cert, &key).and_then(|files| certified_key(&files));
    if let Err(e) = checked {
        r.fail(at(e.file), e.message);
        return None;
    }
    Some(Some(TlsConfig {
        cert,
        key,
        min_version: min_version?,
    }))
}
