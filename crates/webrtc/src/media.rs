//! The audio tracks: PCM from the user encoded to Opus on the local track (paced at real
//! time), the server's Opus track decoded to PCM for the user.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::mpsc as futures_mpsc;
use futures_util::StreamExt;
use reelthyme_audio::{OpusDecoder, OpusEncoder};
use reelthyme_transport::AudioChunk;
use rtc::media::Sample;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::call::Cancel;

/// One Opus packet's worth of audio.
const FRAME: Duration = Duration::from_millis(20);

/// How far ahead of real time audio may be sent: a little, so that a caller's scheduling
/// jitter does not starve the track, never a burst the server would have to absorb.
const LEAD: Duration = Duration::from_millis(60);

/// The local track and how to write to it.
pub(crate) struct LocalTrack {
    pub(crate) track: Arc<TrackLocalStaticSample>,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: u8,
}

/// Encodes the user's chunks onto the local track until the user stops sending or the
/// connection ends.
pub(crate) async fn send(
    local: LocalTrack,
    mut from_user: futures_mpsc::Receiver<AudioChunk>,
    cancel: Cancel,
) {
    let mut encoder: Option<OpusEncoder> = None;
    let mut next_due: Option<Instant> = None;
    loop {
        let chunk = tokio::select! {
            biased;
            () = cancel.fired() => break,
            chunk = from_user.next() => chunk,
        };
        let Some(chunk) = chunk else { break };
        // Each chunk says its rate; a new rate starts a new encoder after the old one's tail.
        let mut packets = Vec::new();
        if encoder.as_ref().is_some_and(|e| e.rate() != chunk.rate)
            && let Some(mut old) = encoder.take()
        {
            packets.extend(old.flush().unwrap_or_default());
        }
        if encoder.is_none() {
            match OpusEncoder::new(chunk.rate) {
                Ok(new) => encoder = Some(new),
                Err(error) => {
                    tracing::warn!(%error, rate = chunk.rate, "audio chunk dropped: unusable rate");
                    continue;
                }
            }
        }
        if let Some(encoder) = encoder.as_mut() {
            match encoder.encode(&chunk.samples) {
                Ok(more) => packets.extend(more),
                Err(error) => tracing::warn!(%error, "an audio frame was lost"),
            }
        }
        for packet in packets {
            // Real time: wait while the track is more than `LEAD` ahead; after a pause the
            // clock restarts from now.
            let now = Instant::now();
            let due = next_due.map_or(now, |due| due.max(now));
            if due > now + LEAD {
                tokio::select! {
                    biased;
                    () = cancel.fired() => return,
                    () = tokio::time::sleep_until((due - LEAD).into()) => {}
                }
            }
            next_due = Some(due + FRAME);
            let sample = Sample {
                data: Bytes::from(packet),
                duration: FRAME,
                ..Sample::new(Instant::now())
            };
            if let Err(error) = local
                .track
                .sample_writer(local.ssrc, local.payload_type)
                .write_sample(&sample)
                .await
            {
                tracing::debug!(%error, "the local audio track ended");
                return;
            }
        }
    }
}

/// Decodes the server's track for the user until it or the connection ends.
pub(crate) async fn receive(
    mut tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    mut to_user: futures_mpsc::Sender<AudioChunk>,
    rate: u32,
    cancel: Cancel,
) {
    let track = tokio::select! {
        biased;
        () = cancel.fired() => return,
        track = tracks.recv() => track,
    };
    let Some(track) = track else { return };
    let mut decoder = match OpusDecoder::new(rate) {
        Ok(decoder) => decoder,
        Err(error) => {
            tracing::warn!(%error, "the server's audio cannot be decoded");
            return;
        }
    };
    let mut last_sequence: Option<u16> = None;
    let mut dropped = 0u64;
    let mut samples = Vec::new();
    loop {
        let event = tokio::select! {
            biased;
            () = cancel.fired() => break,
            event = track.poll() => event,
        };
        let packet = match event {
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
            Some(_) => continue,
        };
        if to_user.is_closed() {
            // Nobody listens: keep reading (the track must be drained), decode nothing.
            continue;
        }
        samples.clear();
        // A few lost packets are concealed, so the audio keeps its timing.
        let sequence = packet.header.sequence_number;
        if let Some(last) = last_sequence {
            let lost = sequence.wrapping_sub(last).wrapping_sub(1);
            if (1..=5).contains(&lost) {
                for _ in 0..lost {
                    let _ = decoder.conceal(&mut samples);
                }
            }
        }
        last_sequence = Some(sequence);
        if let Err(error) = decoder.decode(&packet.payload, &mut samples) {
            tracing::debug!(%error, "an audio packet did not decode");
        }
        if samples.is_empty() {
            continue;
        }
        let chunk = AudioChunk::new(rate, std::mem::take(&mut samples));
        if let Err(refused) = to_user.try_send(chunk) {
            if refused.is_disconnected() {
                continue;
            }
            // Live audio cannot wait for a consumer that is not playing it.
            dropped += 1;
            if dropped == 1 {
                tracing::warn!(
                    "incoming audio dropped: the media queue is full (nobody plays it?)"
                );
            } else if dropped.is_multiple_of(50) {
                tracing::debug!(dropped, "incoming audio still dropped");
            }
        }
    }
}
