//! A real TLS handshake on loopback: a TLS-terminating proxy (certificate made by rcgen at
//! test time, served by tokio-rustls) in front of the simulator. Proves `wss://` works with
//! the crate's explicit `ring` provider, that the server certificate is verified, and that
//! a certificate the client does not trust is refused.

use std::sync::Arc;

use futures_util::StreamExt;
use reelthyme_transport::{Endpoint, ErrorKind, Options, connect};
use tokio::net::{TcpListener, TcpStream};

async fn tls_proxy(upstream: std::net::SocketAddr) -> (std::net::SocketAddr, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = cert.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone().into()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut plain = TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, der)
}

#[tokio::test]
async fn wss_handshakes_with_a_trusted_certificate_and_refuses_an_untrusted_one() {
    let sim = reelthyme_sim::Simulator::start(reelthyme_sim::SimConfig::default())
        .await
        .unwrap();
    let (proxy, der) = tls_proxy(sim.addr()).await;
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("wss://localhost:{}/v1", proxy.port()))
        .api_key("sk-tls");

    let trusted = Options::default().add_root_certificate(der);
    let mut connection = connect(&endpoint, &trusted).await.unwrap();
    let first = connection.receiver.next().await.unwrap().unwrap();
    assert!(first.contains("\"session.created\""), "{first}");

    let error = connect(&endpoint, &Options::default()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect);
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
}
