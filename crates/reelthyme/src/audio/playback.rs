//! The audio layer: plays the answer's audio and barges in when the user speaks.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use reelthyme_audio::{Codec, Cut, Decoder, Player, Resampler};
use reelthyme_schema::{
    AudioFormat, Base64Audio, ClientEvent, ServerEvent, TurnDetection, state::Conversation,
};
use reelthyme_transport::{Error, ErrorKind, MediaReceiver};

use super::{AudioControl, SharedCut, StreamOptions, lock};
use crate::core::Core;
use crate::{Layer, LayerContext, SessionSender};

/// Plays `response.output_audio.delta` on a [`Player`] (decoded from the response's own
/// output format, else the session's: PCM16, or G.711 upsampled to 24 kHz) and consumes
/// the deltas; flushes each item's decoder tail on `response.output_audio.done`; and, on
/// `input_audio_buffer.speech_started`, barges in: the running response is marked cut at
/// once (none of its deltas still arriving is played), the device is flushed, the
/// response is cancelled (unless the server does it itself, with `interrupt_response`),
/// and the item is truncated at exactly what the device played. A failed or stalled
/// device is reported once ([`ErrorKind::Device`]).
///
/// Over a transport that carries audio as tracks (WebRTC), the answer arrives on the
/// incoming track instead of in deltas: the layer plays the track, and a barge-in only
/// stops local playback — the server cuts and truncates the answer itself (and says so
/// with `output_audio_buffer.cleared`, which also flushes the device).
///
/// [`stream`](crate::stream) adds one to a session; add it yourself with
/// [`Session::with_layer`](crate::Session::with_layer) to choose where it sits among
/// other layers.
pub struct AudioLayer {
    player: Arc<Player>,
    cut: SharedCut,
    auto_barge_in: bool,
    decoder: Option<Decoder>,
    /// Barge-ins waiting for the device to honour their flush, oldest first.
    cuts: VecDeque<Cut>,
    /// A device failure already reported (each is reported once).
    reported_device_error: bool,
    core: Arc<Core>,
    /// The incoming audio track of connection `.0`, when the transport carries one.
    track: Option<(u64, MediaReceiver)>,
    /// Resamples track audio that is not at 24 kHz: (rate, resampler).
    track_rate: Option<(u32, Resampler)>,
    /// The item the track's audio belongs to (from `output_audio_buffer.started`).
    track_item: String,
}

impl std::fmt::Debug for AudioLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioLayer")
            .field("auto_barge_in", &self.auto_barge_in)
            .field("pending_cuts", &self.cuts.len())
            .finish_non_exhaustive()
    }
}

impl AudioLayer {
    /// A layer playing on `player`, and the control of it (barge-in by hand, what was
    /// heard) which sends with `sender`.
    pub fn new(
        player: Player,
        sender: &SessionSender,
        options: &StreamOptions,
    ) -> (Self, AudioControl) {
        let player = Arc::new(player);
        // `capture_audio` on this session cancels the echo of what this player plays.
        sender.core().speaker.set(&player);
        let cut = SharedCut::default();
        let control = AudioControl {
            player: player.clone(),
            sender: sender.clone(),
            cut: cut.clone(),
        };
        let layer = Self {
            player,
            cut,
            auto_barge_in: options.auto_barge_in,
            decoder: None,
            cuts: VecDeque::new(),
            reported_device_error: false,
            core: sender.core().clone(),
            track: None,
            track_rate: None,
            track_item: TRACK_ITEM.to_owned(),
        };
        (layer, control)
    }

    fn play(
        &mut self,
        format: Option<&AudioFormat>,
        item_id: &str,
        audio: &Base64Audio,
    ) -> Result<(), Error> {
        if std::mem::take(&mut lock(&self.cut).reset_decoder) {
            self.decoder = None;
        }
        let decoder = match &mut self.decoder {
            Some(decoder) if decoder.codec() == Codec::of(format) => decoder,
            slot => slot.insert(Decoder::for_format(format).map_err(super::audio_error)?),
        };
        let samples = decoder.decode(audio).map_err(|e| {
            Error::other(
                ErrorKind::Parse,
                format!("an audio delta did not decode: {e}"),
                Some(Box::new(e)),
            )
        })?;
        self.player.play(item_id, &samples);
        Ok(())
    }

    fn is_cut(&self, response_id: &str) -> bool {
        lock(&self.cut).interrupted.as_deref() == Some(response_id)
    }

    /// Plays what the incoming track has ready (the connection's, once per connection).
    fn play_track(&mut self, task: &mut Context<'_>) {
        if self.track.is_none() {
            self.track = self.core.take_incoming_audio();
        }
        let Some((_, track)) = &mut self.track else {
            return;
        };
        loop {
            match Pin::new(&mut *track).poll_next(task) {
                Poll::Ready(Some(chunk)) => {
                    let samples = if chunk.rate == 24_000 {
                        chunk.samples
                    } else {
                        let resampler = match &mut self.track_rate {
                            Some((rate, resampler)) if *rate == chunk.rate => resampler,
                            slot => match Resampler::new(chunk.rate, 24_000) {
                                Ok(resampler) => &mut slot.insert((chunk.rate, resampler)).1,
                                Err(error) => {
                                    tracing::warn!(%error, rate = chunk.rate, "unplayable track");
                                    continue;
                                }
                            },
                        };
                        let mut wide = Vec::new();
                        let mut narrow = Vec::new();
                        reelthyme_audio::i16_to_f32(&chunk.samples, &mut narrow);
                        resampler.process(&narrow, &mut wide);
                        let mut pcm = Vec::new();
                        reelthyme_audio::f32_to_i16(&wide, &mut pcm);
                        pcm
                    };
                    self.player.play(&self.track_item, &samples);
                }
                // The track ended with its connection; a new one comes with the next.
                Poll::Ready(None) => {
                    self.track = None;
                    return;
                }
                Poll::Pending => return,
            }
        }
    }
}

/// The player's item for track audio whose item is not known (yet).
const TRACK_ITEM: &str = "track";

/// Whether the server cancels a running response by itself when it hears the user.
fn server_cancels(conversation: &Conversation) -> bool {
    match conversation
        .session()
        .and_then(|session| session.turn_detection())
    {
        Some(Some(TurnDetection::ServerVad(vad))) => vad.interrupt_response != Some(false),
        Some(Some(TurnDetection::SemanticVad(vad))) => vad.interrupt_response != Some(false),
        // Not stated: the server's default, server VAD that interrupts.
        None => true,
        // VAD off, or a kind this crate does not know: say nothing is cancelled for us.
        _ => false,
    }
}

impl Layer for AudioLayer {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        match &event {
            ServerEvent::ResponseOutputAudioDelta(delta) => {
                // Audio of the answer the user interrupted, still arriving: not played.
                if !self.is_cut(&delta.response_id) {
                    let format = cx.conversation().output_format(&delta.response_id).cloned();
                    if let Err(error) = self.play(format.as_ref(), &delta.item_id, &delta.delta) {
                        cx.report(error);
                    }
                }
                return None;
            }
            ServerEvent::ResponseOutputAudioDone(done) => {
                if std::mem::take(&mut lock(&self.cut).reset_decoder) {
                    self.decoder = None;
                }
                // The cut answer's tails (the decoder's, the player's) were dropped with
                // it; a finished one's are its last milliseconds.
                if !self.is_cut(&done.response_id) {
                    if let Some(decoder) = &mut self.decoder {
                        let tail = decoder.flush();
                        self.player.play(&done.item_id, &tail);
                    }
                    self.player.finish(&done.item_id);
                }
            }
            ServerEvent::OutputAudioBufferStarted(started) => {
                // Track audio: the answer's audio item, as the conversation knows it.
                self.track_item = cx
                    .conversation()
                    .response(&started.response_id)
                    .and_then(|response| response.output().first().cloned())
                    .unwrap_or_else(|| TRACK_ITEM.to_owned());
            }
            ServerEvent::OutputAudioBufferCleared(_) if self.track.is_some() => {
                // The server cut its output buffer (a barge-in it handled): so does the
                // device. The truncation is the server's; nothing to send.
                drop(self.player.cut());
            }
            ServerEvent::InputAudioBufferSpeechStarted(_)
                if self.auto_barge_in && self.core.has_tracks() =>
            {
                // Over tracks the server cancels and truncates by itself: stop playing.
                lock(&self.cut).reset_decoder = true;
                drop(self.player.cut());
            }
            ServerEvent::InputAudioBufferSpeechStarted(_) if self.auto_barge_in => {
                // Cut now, so that no delta of this answer is played from here on; the
                // device flush and the events to the server follow.
                let active = cx
                    .conversation()
                    .active_response()
                    .map(|response| response.id().to_owned());
                let active = lock(&self.cut).cut(active);
                self.cuts.push_back(self.player.cut());
                // With `interrupt_response` (the default) the server cancels the response
                // itself; cancelling again only earns an error event.
                if let Some(response_id) = active.filter(|_| !server_cancels(cx.conversation())) {
                    cx.send(ClientEvent::response_cancel_id(response_id));
                }
            }
            _ => {}
        }
        Some(event)
    }

    fn poll(&mut self, task: &mut Context<'_>, cx: &mut LayerContext<'_>) {
        self.play_track(task);
        if !self.reported_device_error
            && let Some(error) = self.player.error()
        {
            self.reported_device_error = true;
            cx.report(Error::other(
                ErrorKind::Device,
                format!("playback failed: {error}"),
                Some(Box::new(error)),
            ));
        }
        // Truncate each cut item at what was played, in order, once the device says.
        while let Some(cut) = self.cuts.front_mut() {
            match Pin::new(cut).poll(task) {
                Poll::Pending => break,
                Poll::Ready(truncation) => {
                    self.cuts.pop_front();
                    if let Some(truncation) = truncation {
                        cx.send(ClientEvent::truncate(
                            &truncation.item_id,
                            truncation.audio_end_ms,
                        ));
                    }
                }
            }
        }
    }

    fn on_connected(&mut self, _cx: &mut LayerContext<'_>) {
        // A new server session: the old one's items cannot be truncated, its decoder tail
        // belongs to audio that will not come.
        self.cuts.clear();
        self.decoder = None;
        self.track = None;
        self.track_item = TRACK_ITEM.to_owned();
        let mut cut = lock(&self.cut);
        cut.interrupted = None;
        cut.reset_decoder = false;
    }
}
