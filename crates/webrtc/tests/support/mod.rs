//! Test scaffolding shared by the spike and the transport tests: webrtc-rs peers on
//! loopback, and a webrtc-rs answerer behind a tiny HTTP server speaking the
//! `POST /v1/realtime/calls` contract.

#![allow(dead_code)]

pub mod answerer;
pub mod relay;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCPeerConnectionState, SettingEngineBuilder,
};

/// Every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a peer's handler saw, stamped.
pub enum Seen {
    Gathered(Instant),
    State(RTCPeerConnectionState, Instant),
    Channel(Arc<dyn webrtc::data_channel::DataChannel>),
    Track(Arc<dyn webrtc::media_stream::track_remote::TrackRemote>),
}

/// Forwards the handler's callbacks: states to one channel, data channels and tracks to
/// their own (so that waiting for a state never drops them).
pub struct Events {
    pub states: mpsc::UnboundedSender<Seen>,
    pub found: mpsc::UnboundedSender<Seen>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.states.send(Seen::Gathered(Instant::now()));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.states.send(Seen::State(state, Instant::now()));
    }

    async fn on_data_channel(&self, channel: Arc<dyn webrtc::data_channel::DataChannel>) {
        let _ = self.found.send(Seen::Channel(channel));
    }

    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        let _ = self.found.send(Seen::Track(track));
    }
}

/// How a test peer is set up.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// mDNS off (it costs a multicast socket and, for `.local` candidates, a query).
    pub no_mdns: bool,
    /// The ICE connectivity-check interval (webrtc-rs's default is 200 ms).
    pub check_interval: Option<Duration>,
    /// Wake the offerer's driver until its channel opens (see the spike).
    pub nudge: bool,
    /// An answerer takes the DTLS server role (`a=setup:passive`), so that the offerer —
    /// whose driver is nudged — sends the ClientHello and the SCTP INIT.
    pub answer_passive: bool,
    /// Run the driver on webrtc-rs's dedicated reactor, where dropping the connection
    /// stops it silently (no close sent): a server that vanishes.
    pub dedicated_reactor: bool,
}

impl Tuning {
    pub const DEFAULTS: Tuning = Tuning {
        no_mdns: false,
        check_interval: None,
        nudge: false,
        answer_passive: false,
        dedicated_reactor: false,
    };
    pub const FAST: Tuning = Tuning {
        no_mdns: true,
        check_interval: Some(Duration::from_millis(20)),
        nudge: false,
        answer_passive: false,
        dedicated_reactor: false,
    };
}

/// A test peer: the connection, its state changes, and the channels and tracks the remote
/// side opened.
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    pub states: mpsc::UnboundedReceiver<Seen>,
    pub found: mpsc::UnboundedReceiver<Seen>,
}

/// A peer on a loopback socket with Opus registered.
pub async fn peer(tuning: Tuning) -> Peer {
    let (states_tx, states) = mpsc::unbounded_channel();
    let (found_tx, found) = mpsc::unbounded_channel();
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let mut settings = SettingEngineBuilder::new();
    if tuning.no_mdns {
        settings = settings.with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
    }
    if tuning.answer_passive {
        settings =
            settings.with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server);
    }
    if tuning.check_interval.is_some() {
        settings = settings.with_ice_connection_attempts(tuning.check_interval, None);
    }
    let mut builder = PeerConnectionBuilder::new();
    if tuning.dedicated_reactor {
        builder = builder.with_dedicated_reactor_pool_size(1);
    }
    let pc = builder
        .with_media_engine(media)
        .with_setting_engine(settings.build())
        .with_handler(Arc::new(Events {
            states: states_tx,
            found: found_tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap();
    Peer {
        pc: Arc::new(pc),
        states,
        found,
    }
}

/// A local Opus track (48 kHz, the SDP's `opus/48000/2`).
pub fn opus_track(id: &str) -> (Arc<TrackLocalStaticSample>, u32) {
    let ssrc = rand_ssrc();
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            format!("{id}-stream"),
            format!("{id}-track"),
            format!("{id}-audio"),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                ..Default::default()
            }],
        ),
    )
    .unwrap();
    (Arc::new(track), ssrc)
}

fn rand_ssrc() -> u32 {
    // Distinct enough for two peers in one process.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.subsec_nanos());
    nanos | 1
}

/// Waits for the first event `pick` accepts.
pub async fn wait_for<T>(
    events: &mut mpsc::UnboundedReceiver<Seen>,
    mut pick: impl FnMut(Seen) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let seen = events.recv().await.expect("the peer's events ended");
            if let Some(found) = pick(seen) {
                return found;
            }
        }
    })
    .await
    .expect("timed out waiting for a peer event")
}

/// The median of some durations.
pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}
