//! The audio layer: plays the answer's audio and barges in when the user speaks.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use reelthyme_audio::{Codec, Cut, Decoder, Player};
use reelthyme_schema::{
    AudioFormat, Base64Audio, ClientEvent, ServerEvent, TurnDetection, state::Conversation,
};
use reelthyme_transport::{Error, ErrorKind};

use super::{AudioControl, SharedCut, StreamOptions, lock};
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
}

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
        let mut cut = lock(&self.cut);
        cut.interrupted = None;
        cut.reset_decoder = false;
    }
}
