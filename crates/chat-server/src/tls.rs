//! TLS on the server's own port (`--tls-cert`, `--tls-key`), so browsers get HTTP/2 with
//! no proxy in front: they speak HTTP/2 only over TLS, and over HTTP/1.1 every open tab
//! holds one of a host's six connections. ALPN offers h2 and http/1.1 on the one port.
//! The certificate sits behind a resolver that `reload` swaps (on SIGHUP): new handshakes
//! get the new one, open connections keep theirs, and files that do not load leave the old
//! one serving, so a botched renewal never takes the site down.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use tokio_rustls::{
    rustls::{
        self,
        crypto::{ring, CryptoProvider},
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
        server::{ClientHello, ResolvesServerCert},
        sign::CertifiedKey,
        ServerConfig,
    },
    TlsAcceptor,
};

#[cfg(unix)]
use crate::shutdown::Shutdown;

/// Why a certificate or key could not be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot use the TLS certificate {}: {reason}", .path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("the TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificate(PathBuf),
    #[error("cannot use the TLS key {}: {reason}", .path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key {} does not belong to the certificate {}", .key.display(), .cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

/// The certificate and key files, PEM: the certificate file holds the chain, the server's
/// own certificate first (what certbot calls fullchain.pem).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server's TLS: an acceptor for the accept loop and the certificate it presents.
/// Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    current: Arc<CurrentCertificate>,
    files: TlsFiles,
}

impl ServerTls {
    /// Loads the files; any problem is an error naming the file.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(ring::default_provider());
        let current = Arc::new(CurrentCertificate(RwLock::new(Arc::new(certified_key(
            &files, &provider,
        )?))));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // Preference order: HTTP/2 for whoever speaks it (browsers, native gRPC).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again and, if they load, presents them from the next handshake on;
    /// otherwise keeps what it had and says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let provider = self.acceptor.config().crypto_provider();
        let fresh = certified_key(&self.files, provider)?;
        *self.current.0.write().unwrap() = Arc::new(fresh);
        Ok(())
    }
}

/// Reloads `tls` on every SIGHUP (`systemctl reload`) until shutdown; without TLS a SIGHUP
/// is only logged, so a reload never stops a server that has nothing to reload (SIGHUP's
/// default is to terminate). The handler is installed before this returns.
#[cfg(unix)]
pub fn reload_on_hangup(
    tls: Option<ServerTls>,
    shutdown: Shutdown,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                got = hangups.recv() => if got.is_none() { return },
                _ = shutdown.wait() => return,
            }
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: no TLS certificate to reload (no --tls-cert)");
                continue;
            };
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(cert = %tls.files.cert.display(), "SIGHUP: reloaded the TLS certificate; new connections get it")
                }
                Err(err) => {
                    tracing::error!(%err, "SIGHUP: kept the TLS certificate already loaded")
                }
            }
        }
    })
}

/// The certificate every handshake is answered with, swapped whole by `reload`.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap().clone())
    }
}

fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|err| TlsError::Key {
        path: files.key.clone(),
        reason: pem_reason(
            err,
            "PEM private key (-----BEGIN PRIVATE KEY-----, or EC or RSA PRIVATE KEY)",
        ),
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| TlsError::Key {
            path: files.key.clone(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                key: files.key.clone(),
                cert: files.cert.clone(),
            })
        }
        Err(err) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            reason: err.to_string(),
        }),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Certificate {
            path: path.to_owned(),
            reason: pem_reason(err, "PEM certificate (-----BEGIN CERTIFICATE-----)"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

/// The PEM reader's error, in words: an I/O error as the system says it.
fn pem_reason(err: rustls::pki_types::pem::Error, wanted: &str) -> String {
    use rustls::pki_types::pem::Error;
    match err {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => format!("it holds no {wanted}"),
        other => format!("not valid PEM ({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh self-signed certificate and key, PEM.
    fn made() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    struct Files {
        _dir: tempfile::TempDir,
        files: TlsFiles,
    }

    impl Files {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let files = TlsFiles {
                cert: dir.path().join("cert.pem"),
                key: dir.path().join("key.pem"),
            };
            Files { _dir: dir, files }
        }

        fn write(&self, (cert, key): &(String, String)) {
            std::fs::write(&self.files.cert, cert).unwrap();
            std::fs::write(&self.files.key, key).unwrap();
        }
    }

    fn presented(tls: &ServerTls) -> Vec<u8> {
        tls.current.0.read().unwrap().cert[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_reload_swaps_in_files_that_load_and_keeps_the_old_ones_otherwise() {
        let files = Files::new();
        let (first, second) = (made(), made());
        files.write(&first);
        let tls = ServerTls::load(files.files.clone()).unwrap();
        assert_eq!(presented(&tls), der(&first.0));
        files.write(&second);
        tls.reload().unwrap();
        assert_eq!(presented(&tls), der(&second.0));
        // A key that is not the certificate's, then no files at all: both refused, and
        // the second certificate stays.
        files.write(&(second.0.clone(), first.1.clone()));
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        std::fs::remove_file(&files.files.cert).unwrap();
        assert!(matches!(tls.reload(), Err(TlsError::Certificate { .. })));
        assert_eq!(presented(&tls), der(&second.0));
    }

    #[test]
    fn errors_name_the_file() {
        let files = Files::new();
        std::fs::write(&files.files.cert, "not a certificate\n").unwrap();
        std::fs::write(&files.files.key, made().1).unwrap();
        let said = ServerTls::load(files.files.clone())
            .err()
            .unwrap()
            .to_string();
        let cert = files.files.cert.display().to_string();
        assert_eq!(
            said,
            format!("the TLS certificate file {cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        );
        std::fs::write(&files.files.key, "not a key\n").unwrap();
        std::fs::write(&files.files.cert, made().0).unwrap();
        let said = ServerTls::load(files.files.clone())
            .err()
            .unwrap()
            .to_string();
        assert!(
            said.starts_with(&format!(
                "cannot use the TLS key {}: it holds no PEM private key",
                files.files.key.display()
            )),
            "{said}"
        );
    }
}
