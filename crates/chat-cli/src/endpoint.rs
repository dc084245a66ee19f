//! How the CLI reaches the server: `http://` is HTTP/2 in cleartext (chat-server on its own
//! port); `https://` is HTTP/2 over TLS, as behind nginx (deploy/nginx.conf). TLS trusts the
//! system's certificate authorities, or, with `--ca-cert`, that one certificate authority
//! (a self-signed certificate, a private CA).
use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub async fn connect(server: &str, ca_cert: Option<&Path>) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| format!("bad --server URL {server:?}: {e}"))?;
    if server.starts_with("https://") {
        let tls = match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read --ca-cert {}: {e}", path.display()))?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("cannot set up TLS for {server}: {e}"))?;
    } else if ca_cert.is_some() {
        return Err(format!("--ca-cert is for https:// servers, not {server}"));
    }
    endpoint.connect().await.map_err(|e| {
        // tonic's own message is only "transport error"; the reason is in its sources.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        format!("cannot reach {server}: {reason}")
    })
}
