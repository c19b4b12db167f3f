//! Ephemeral keys and call hangup, against the simulator's REST endpoints.

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::SessionConfig;
use reelthyme::{ClientSecretRequest, Config, Endpoint, ErrorKind, Options};
use reelthyme_sim::{SimConfig, Simulator};

fn endpoint(sim: &Simulator) -> Endpoint {
    Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()))
}

#[tokio::test]
async fn an_ephemeral_key_starts_the_session_it_was_minted_for() {
    let sim = Simulator::start(SimConfig::default().api_key("sk-standard"))
        .await
        .unwrap();
    let mut session = SessionConfig::realtime();
    session.instructions = Some("Speak like a pirate.".into());
    session.audio_output_mut().voice = Some("cedar".into());
    let request = ClientSecretRequest::new(session, 120);
    let options = Options::default();
    let secret =
        reelthyme::create_client_secret(&endpoint(&sim).api_key("sk-standard"), &request, &options)
            .await
            .unwrap();
    assert!(secret.value.expose_secret().starts_with("ek_"));
    assert!(
        !format!("{secret:?}").contains(secret.value.expose_secret()),
        "Debug shows the key"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (secret.expires_at - now - 120).abs() <= 2,
        "expires_at {}",
        secret.expires_at
    );
    assert_eq!(
        secret.session.instructions.as_deref(),
        Some("Speak like a pirate.")
    );

    // A browser would now connect with the ephemeral key alone.
    let browser = endpoint(&sim).bearer_token(secret.value.expose_secret());
    let connected = reelthyme::connect(Config::new(browser)).await.unwrap();
    assert_eq!(
        connected.config().instructions.as_deref(),
        Some("Speak like a pirate.")
    );
    let voice = connected
        .config()
        .audio
        .as_ref()
        .and_then(|a| a.output.as_ref())
        .and_then(|o| o.voice.clone());
    assert_eq!(voice, Some("cedar".into()));
}

#[tokio::test]
async fn minting_is_refused_with_typed_errors() {
    let sim = Simulator::start(SimConfig::default().api_key("sk-standard"))
        .await
        .unwrap();
    let options = Options::default();
    let request = ClientSecretRequest::default();
    let wrong =
        reelthyme::create_client_secret(&endpoint(&sim).api_key("sk-wrong"), &request, &options)
            .await;
    let wrong = wrong.unwrap_err();
    assert_eq!(
        (wrong.kind(), wrong.http_status()),
        (ErrorKind::Auth, Some(401))
    );
    let secret =
        reelthyme::create_client_secret(&endpoint(&sim).api_key("sk-standard"), &request, &options)
            .await
            .unwrap();
    // An ephemeral key cannot mint more keys.
    let by_ephemeral = endpoint(&sim).bearer_token(secret.value.expose_secret());
    let refused = reelthyme::create_client_secret(&by_ephemeral, &request, &options)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Auth);
    let too_short = ClientSecretRequest::new(SessionConfig::realtime(), 5);
    let bad = reelthyme::create_client_secret(
        &endpoint(&sim).api_key("sk-standard"),
        &too_short,
        &options,
    )
    .await;
    let bad = bad.unwrap_err();
    assert_eq!(
        (bad.http_status(), bad.code()),
        (Some(400), Some("invalid_value"))
    );
    assert!(!bad.is_retryable());
}

#[tokio::test]
async fn hanging_up_ends_the_sideband_session() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let call = sim.open_call();
    let options = Options::default();
    let mut sideband =
        reelthyme::connect(Config::new(endpoint(&sim).api_key("sk-any").call_id(&call)))
            .await
            .unwrap();
    assert_eq!(
        sideband.next().await.unwrap().unwrap().type_name(),
        "session.created"
    );
    reelthyme::hangup(&endpoint(&sim).api_key("sk-any"), &call, &options)
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), sideband.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the sideband session ends cleanly: {end:?}");
    let again = reelthyme::hangup(&endpoint(&sim).api_key("sk-any"), &call, &options)
        .await
        .unwrap_err();
    assert_eq!(again.http_status(), Some(404));
}
