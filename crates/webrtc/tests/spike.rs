//! Two webrtc-rs peers in one process on loopback, as the transport and the simulator use
//! them: an `oai-events` data channel both ways and an Opus track one way; and where the
//! setup time goes (offer → data channel open, p50 of 20 runs), with webrtc-rs's defaults
//! and with the loopback tuning the transport uses.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reelthyme_audio::{OPUS_RATE, OpusDecoder, OpusEncoder};
use rtc::media::Sample;
use support::{Seen, Tuning, WAIT, median, opus_track, peer, wait_for};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;
use webrtc::peer_connection::RTCPeerConnectionState;

/// The instants of one setup.
#[derive(Debug, Clone, Copy)]
struct Phases {
    offered: Duration,
    answered: Duration,
    connected: Duration,
    open: Duration,
}

/// What a data channel said.
enum Said {
    Open(Instant),
    Text(String),
}

fn watch_channel(channel: Arc<dyn DataChannel>) -> mpsc::UnboundedReceiver<Said> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            let said = match event {
                DataChannelEvent::OnOpen => Said::Open(Instant::now()),
                DataChannelEvent::OnMessage(message) => {
                    Said::Text(String::from_utf8_lossy(&message.data).into_owned())
                }
                DataChannelEvent::OnClose => break,
                _ => continue,
            };
            if tx.send(said).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_said(rx: &mut mpsc::UnboundedReceiver<Said>) -> Said {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting on the data channel")
        .expect("the data channel ended")
}

/// Wakes the offerer's driver every millisecond until the channel is open: webrtc-rs 0.21's
/// driver flushes writes *before* it processes events, so a packet an event produces (the
/// DTLS ClientHello after ICE connects, the SCTP INIT after DTLS, the DCEP OPEN after SCTP)
/// waits for the next timer, ~200 ms. Any call that wakes the driver flushes it; setting a
/// channel's low threshold to its current value is one that changes nothing else.
fn nudge(channel: Arc<dyn DataChannel>, opened: Arc<std::sync::atomic::AtomicBool>) {
    tokio::spawn(async move {
        let deadline = Instant::now() + WAIT;
        while !opened.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if channel.set_buffered_amount_low_threshold(0).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// One setup, and (when `exchange`) the traffic the transport needs.
async fn run(tuning: Tuning, exchange: bool) -> Phases {
    let support::Peer {
        pc: offerer,
        states: mut offerer_events,
        ..
    } = peer(tuning).await;
    let channel = offerer
        .create_data_channel("oai-events", None)
        .await
        .unwrap();
    let mut offerer_said = watch_channel(channel.clone());
    let (track, ssrc) = opus_track("client");
    let sender = offerer
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();

    let opened = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if tuning.nudge {
        nudge(channel.clone(), opened.clone());
    }
    let start = Instant::now();
    let offer = offerer.create_offer(None).await.unwrap();
    offerer.set_local_description(offer).await.unwrap();
    // The Realtime API takes one offer with every candidate in it: no trickle.
    wait_for(&mut offerer_events, |seen| {
        matches!(seen, Seen::Gathered(_)).then_some(())
    })
    .await;
    let offer = offerer.local_description().await.unwrap();
    let offered = start.elapsed();

    let support::Peer {
        pc: answerer,
        states: mut answerer_events,
        found: mut answerer_found,
    } = peer(tuning).await;
    answerer.set_remote_description(offer).await.unwrap();
    let answer = answerer.create_answer(None).await.unwrap();
    answerer.set_local_description(answer).await.unwrap();
    wait_for(&mut answerer_events, |seen| {
        matches!(seen, Seen::Gathered(_)).then_some(())
    })
    .await;
    let answer = answerer.local_description().await.unwrap();
    let answered = start.elapsed();

    offerer.set_remote_description(answer).await.unwrap();
    let connected = wait_for(&mut offerer_events, |seen| match seen {
        Seen::State(RTCPeerConnectionState::Connected, at) => Some(at),
        Seen::State(RTCPeerConnectionState::Failed, _) => panic!("the offerer failed"),
        _ => None,
    })
    .await;
    let open = loop {
        if let Said::Open(at) = next_said(&mut offerer_said).await {
            break at;
        }
    };
    opened.store(true, std::sync::atomic::Ordering::Relaxed);
    let phases = Phases {
        offered,
        answered,
        connected: connected - start,
        open: open - start,
    };

    if exchange {
        // The answerer's side of the channel (its remote track shows up with the first
        // RTP packet).
        let remote_channel = wait_for(&mut answerer_found, |seen| match seen {
            Seen::Channel(c) => Some(c),
            _ => None,
        })
        .await;
        assert_eq!(remote_channel.label().await.unwrap(), "oai-events");
        let mut answerer_said = watch_channel(remote_channel.clone());

        // Events both ways.
        channel
            .send_text(r#"{"type":"response.create"}"#)
            .await
            .unwrap();
        let got = loop {
            if let Said::Text(text) = next_said(&mut answerer_said).await {
                break text;
            }
        };
        assert_eq!(got, r#"{"type":"response.create"}"#);
        remote_channel
            .send_text(r#"{"type":"response.done"}"#)
            .await
            .unwrap();
        let got = loop {
            if let Said::Text(text) = next_said(&mut offerer_said).await {
                break text;
            }
        };
        assert_eq!(got, r#"{"type":"response.done"}"#);

        // Opus one way: 1 s of a tone, 20 ms per sample, decoded on the far side.
        let payload_type =
            sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type;
        let mut encoder = OpusEncoder::new(OPUS_RATE).unwrap();
        let tone: Vec<i16> = (0..OPUS_RATE as usize)
            .map(|i| ((i as f32 * 0.0576).sin() * 8000.0) as i16)
            .collect();
        let packets = encoder.encode(&tone).unwrap();
        assert_eq!(packets.len(), 50);
        let sending = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            for packet in packets {
                ticker.tick().await;
                track
                    .sample_writer(ssrc, payload_type)
                    .write_sample(&Sample {
                        data: Bytes::from(packet),
                        duration: Duration::from_millis(20),
                        ..Sample::new(Instant::now())
                    })
                    .await
                    .unwrap();
            }
        });
        let remote_track = wait_for(&mut answerer_found, |seen| match seen {
            Seen::Track(t) => Some(t),
            _ => None,
        })
        .await;
        let decoded = tokio::spawn(async move {
            let mut decoder = OpusDecoder::new(OPUS_RATE).unwrap();
            let mut out = Vec::new();
            while out.len() < 40 * 960 {
                match tokio::time::timeout(WAIT, remote_track.poll()).await {
                    Ok(Some(TrackRemoteEvent::OnRtpPacket(packet))) => {
                        decoder.decode(&packet.payload, &mut out).unwrap();
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            out
        });
        sending.await.unwrap();
        let decoded = decoded.await.unwrap();
        assert!(
            decoded.len() >= 40 * 960,
            "{} samples decoded",
            decoded.len()
        );
        let energy = decoded.iter().map(|&s| f64::from(s).abs()).sum::<f64>() / 40.0 / 960.0;
        assert!(energy > 1000.0, "the tone arrived as silence ({energy})");
    }

    offerer.close().await.unwrap();
    answerer.close().await.unwrap();
    phases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_events_and_opus() {
    if std::env::var_os("SPIKE_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    run(Tuning::FAST, true).await;
}

fn report(name: &str, runs: &[Phases]) -> Duration {
    let p50 = |f: fn(&Phases) -> Duration| median(runs.iter().map(f).collect());
    let open = p50(|p| p.open);
    eprintln!(
        "{name}: p50 offer gathered {:?}, answer gathered {:?}, connected {:?}, channel open {:?}",
        p50(|p| p.offered),
        p50(|p| p.answered),
        p50(|p| p.connected),
        open,
    );
    open
}

/// Prints the setup times; run with `--ignored --nocapture` (20 setups each way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run it by hand"]
async fn setup_time_p50() {
    let tunings = [
        ("webrtc-rs defaults", Tuning::DEFAULTS),
        ("no mDNS, 20 ms checks", Tuning::FAST),
        (
            "+ driver nudged",
            Tuning {
                nudge: true,
                ..Tuning::FAST
            },
        ),
        (
            "+ answerer DTLS server",
            Tuning {
                nudge: true,
                answer_passive: true,
                ..Tuning::FAST
            },
        ),
        (
            "+ 5 ms checks",
            Tuning {
                nudge: true,
                answer_passive: true,
                no_mdns: true,
                check_interval: Some(Duration::from_millis(5)),
                dedicated_reactor: false,
            },
        ),
    ];
    let mut runs = vec![Vec::new(); tunings.len()];
    for _ in 0..20 {
        for (i, (_, tuning)) in tunings.iter().enumerate() {
            runs[i].push(run(*tuning, false).await);
        }
    }
    for (i, (name, _)) in tunings.iter().enumerate() {
        report(name, &runs[i]);
    }
}
