//! TLS for `wss://`: rustls with the `ring` provider passed explicitly (never a process-wide
//! default, so another crate's choice of provider cannot make the handshake panic), and the
//! Mozilla roots from `webpki-roots` plus any the caller adds.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::error::{Error, ErrorKind, Result};

pub(crate) fn client_config(extra_roots: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for der in extra_roots {
        roots.add(CertificateDer::from(der.clone())).map_err(|e| {
            Error::new(ErrorKind::Config, "an extra root certificate is invalid").with_source(e)
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Config, "TLS configuration").with_source(e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
