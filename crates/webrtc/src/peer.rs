//! Building a webrtc-rs peer connection the way this transport needs it, and what its
//! event handler reports.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reelthyme_transport::{Error, ErrorKind, Result};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState,
    SettingEngineBuilder,
};

use crate::settings::WebRtc;

/// The payload type webrtc-rs (and browsers) give Opus.
const OPUS_PAYLOAD_TYPE: u8 = 111;

/// How long a candidate pair is tried before it fails (webrtc-rs's default: 7 checks
/// 200 ms apart).
const PAIR_BUDGET: Duration = Duration::from_millis(1400);

/// A webrtc-rs error as this crate's.
pub(crate) fn rtc_error(kind: ErrorKind, what: &str, error: webrtc::error::Error) -> Error {
    Error::new(kind, format!("{what}: {error}")).with_source(error)
}

/// What the handler reports: the latest connection state, whether gathering is done, the
/// remote tracks and the data channels the remote side opened.
pub(crate) struct Events {
    pub(crate) state: watch::Receiver<RTCPeerConnectionState>,
    pub(crate) gathered: watch::Receiver<bool>,
    pub(crate) tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    pub(crate) channels: mpsc::Receiver<Arc<dyn DataChannel>>,
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
    channels: mpsc::Sender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        tracing::trace!(%state, "ICE gathering");
        self.gathered
            .send_replace(state == RTCIceGatheringState::Complete);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "peer connection");
        self.state.send_replace(state);
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // A client opens one; more are ignored (and, unread, cost their own buffers only).
        if self.channels.try_send(channel).is_err() {
            tracing::debug!("a data channel beyond the first was ignored");
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // One audio track is expected; a server that sends more gets the first few heard.
        if self.tracks.try_send(track).is_err() {
            tracing::debug!("a remote track beyond the first was ignored");
        }
    }
}

/// The addresses to gather from: the caller's, or every interface plus loopback when the
/// server is on this machine.
fn bind_addrs(settings: &WebRtc, server: Option<IpAddr>) -> Vec<SocketAddr> {
    if let Some(addrs) = &settings.bind {
        return addrs.clone();
    }
    let mut addrs = vec![SocketAddr::from(([0, 0, 0, 0], 0))];
    // A wildcard expands to every interface but loopback.
    if server.is_some_and(|ip| ip.is_loopback()) {
        addrs.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    addrs
}

/// Which end of the call a peer connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client: it offers, and gathers from every interface (plus loopback for a
    /// server on this machine).
    Offerer { server: Option<IpAddr> },
    /// The server: it answers as the DTLS server (`a=setup:passive`), so that the client
    /// sends the ClientHello and the SCTP INIT (see [`nudge`]), and gathers from every
    /// interface and loopback.
    Answerer,
}

/// Builds a peer connection for one side of a call.
pub(crate) async fn build(
    settings: &WebRtc,
    side: Side,
) -> Result<(Arc<dyn PeerConnection>, Events)> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )
        .map_err(|e| rtc_error(ErrorKind::Config, "cannot register Opus", e))?;
    let checks = u16::try_from(
        (PAIR_BUDGET.as_millis() / settings.check_interval.as_millis().max(1)).max(7),
    )
    .unwrap_or(u16::MAX);
    let mut setting_engine = SettingEngineBuilder::new()
        // mDNS hides host addresses from web pages; a native client has nothing to hide
        // from the server, which could not resolve `.local` names anyway.
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(Some(settings.check_interval), Some(checks))
        .with_ice_timeouts(
            Some(settings.disconnected_after),
            // `failed` comes later than the grace: the grace decides.
            Some(settings.disconnected_after.max(Duration::from_secs(25))),
            Some((settings.disconnected_after / 4).min(Duration::from_secs(2))),
        );
    if side == Side::Answerer {
        setting_engine = setting_engine.with_answering_dtls_role(RTCDtlsRole::Server);
    }
    let setting_engine = setting_engine.build();
    let configuration = RTCConfigurationBuilder::default()
        .with_ice_servers(
            settings
                .ice_servers
                .iter()
                .map(|server| RTCIceServer {
                    urls: server.urls.clone(),
                    username: server.username.clone(),
                    credential: server.credential.clone(),
                })
                .collect(),
        )
        .build();
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (gathered_tx, gathered) = watch::channel(false);
    let (tracks_tx, tracks) = mpsc::channel(2);
    let (channels_tx, channels) = mpsc::channel(2);
    let addrs = match side {
        Side::Offerer { server } => bind_addrs(settings, server),
        Side::Answerer => bind_addrs(settings, Some(IpAddr::from([127, 0, 0, 1]))),
    };
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(media)
        .with_setting_engine(setting_engine)
        .with_handler(Arc::new(Handler {
            state: state_tx,
            gathered: gathered_tx,
            tracks: tracks_tx,
            channels: channels_tx,
        }))
        .with_udp_addrs(addrs)
        .with_data_channel_send_buffer_limit(settings.send_buffer)
        .build()
        .await
        .map_err(|e| rtc_error(ErrorKind::Connect, "cannot start a peer connection", e))?;
    Ok((
        Arc::new(pc),
        Events {
            state,
            gathered,
            tracks,
            channels,
        },
    ))
}

/// Opus as the SDP names it (`opus/48000/2`).
pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// A local Opus track and its SSRC.
pub(crate) fn opus_track(label: &str) -> Result<(Arc<TrackLocalStaticSample>, u32)> {
    let ssrc = ssrc();
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            format!("{label}-stream"),
            format!("{label}-audio"),
            label.to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(),
                ..Default::default()
            }],
        ),
    )
    .map_err(|e| rtc_error(ErrorKind::Config, "cannot make an Opus track", e))?;
    Ok((Arc::new(track), ssrc))
}

/// A random-enough SSRC (RFC 3550 asks for randomness, not secrecy).
fn ssrc() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // Truncation is the point: any 32 bits of the hash.
    #[allow(clippy::cast_possible_truncation)]
    let ssrc = hasher.finish() as u32;
    ssrc.max(1)
}

/// Wakes the peer connection's driver every millisecond until `done` fires.
///
/// webrtc-rs 0.21's driver flushes its writes *before* it processes events in each turn
/// of its loop, so a packet that an event produces — the DTLS ClientHello when ICE
/// connects, the SCTP INIT when DTLS completes, the data channel's OPEN when SCTP does —
/// waits for the next timer, about 200 ms each (measured: 600 ms of a 608 ms loopback
/// setup). Any call that wakes the driver flushes them; setting the channel's low
/// threshold to the value it has changes nothing else.
pub(crate) fn nudge(channel: Arc<dyn DataChannel>, threshold: u32, done: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut done = done;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !*done.borrow_and_update() {
            tokio::select! {
                changed = done.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    if channel.set_buffered_amount_low_threshold(threshold).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
}
