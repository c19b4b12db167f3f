//! The server's side of a call: answering an offer (what `POST /v1/realtime/calls`
//! does), then the same [`Connection`] as the client's, seen from the other end — for the
//! simulator, and for anyone who serves the Realtime API's WebRTC contract.

use std::sync::Arc;

use reelthyme_transport::{Connection, Error, ErrorKind, Options, Result};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use crate::call::{CHANNEL, Role, close_peer};
use crate::media::LocalTrack;
use crate::peer::{self, Events, Side, rtc_error};
use crate::settings::WebRtc;

/// A call answered but not yet connected: send [`Answered::sdp`] back to the client (the
/// body of the `201`), then wait for [`Answered::connected`].
#[must_use = "an answered call holds a peer connection until it connects or is dropped"]
pub struct Answered {
    settings: WebRtc,
    sdp: String,
    pc: Arc<dyn PeerConnection>,
    events: Events,
    audio: Option<(Arc<TrackLocalStaticSample>, u32, Arc<dyn RtpSender>)>,
}

impl std::fmt::Debug for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answered")
            .field("sdp_bytes", &self.sdp.len())
            .field("audio", &self.audio.is_some())
            .finish_non_exhaustive()
    }
}

impl WebRtc {
    /// Answers a client's offer as the server: a peer connection (the DTLS server, so the
    /// client's stack sends first), an Opus track back when the offer has audio and
    /// [`WebRtc::audio`] is on, the answer with its candidates.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] for an offer that is not SDP or cannot be answered
    /// (what the API answers with 400), [`ErrorKind::Connect`] when no peer connection can
    /// be made.
    pub async fn answer(&self, offer: &str) -> Result<Answered> {
        let invalid = |what: &str, error: webrtc::error::Error| {
            rtc_error(ErrorKind::InvalidRequest, what, error)
        };
        let description = RTCSessionDescription::offer(offer.to_owned())
            .map_err(|e| invalid("the offer is not SDP", e))?;
        let (pc, mut events) = peer::build(self, Side::Answerer).await?;
        let answered = async {
            pc.set_remote_description(description)
                .await
                .map_err(|e| invalid("the offer cannot be answered", e))?;
            let audio = if self.audio && offer.contains("m=audio") {
                let (track, ssrc) = peer::opus_track("reelthyme-server")?;
                let sender = pc
                    .add_track(track.clone() as Arc<dyn TrackLocal>)
                    .await
                    .map_err(|e| rtc_error(ErrorKind::Connect, "cannot add the audio track", e))?;
                Some((track, ssrc, sender))
            } else {
                None
            };
            let answer = pc
                .create_answer(None)
                .await
                .map_err(|e| invalid("the offer cannot be answered", e))?;
            pc.set_local_description(answer)
                .await
                .map_err(|e| rtc_error(ErrorKind::Connect, "cannot apply the answer", e))?;
            let _ = tokio::time::timeout(
                crate::call::GATHER_WAIT,
                events.gathered.wait_for(|done| *done),
            )
            .await;
            let sdp = pc
                .local_description()
                .await
                .ok_or_else(|| Error::new(ErrorKind::Connect, "the peer connection has no answer"))?
                .sdp;
            Ok::<_, Error>((sdp, audio))
        }
        .await;
        match answered {
            Ok((sdp, audio)) => Ok(Answered {
                settings: self.clone(),
                sdp,
                pc,
                events,
                audio,
            }),
            Err(error) => {
                close_peer(&pc).await;
                Err(error)
            }
        }
    }
}

impl Answered {
    /// The answer SDP, for the client.
    pub fn sdp(&self) -> &str {
        &self.sdp
    }

    /// Waits for the client to connect and open `oai-events` (bounded by
    /// [`WebRtc::setup_timeout`], else the options' `connect_timeout`), then runs the call:
    /// the returned connection's sender writes to the client, its receiver yields what the
    /// client sends, its media carries the server's track out and the client's in.
    /// Closing it closes the channel and the peer connection.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] when the client never connects in time,
    /// [`ErrorKind::Connect`] when ICE or DTLS fail.
    pub async fn connected(self, options: &Options) -> Result<Connection> {
        let Self {
            settings,
            pc,
            mut events,
            audio,
            ..
        } = self;
        let bound = settings.setup_timeout.unwrap_or(options.connect_timeout);
        let channel = tokio::time::timeout(bound, wait_for_channel(&mut events)).await;
        let channel = match channel {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => {
                close_peer(&pc).await;
                return Err(error);
            }
            Err(_) => {
                close_peer(&pc).await;
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the client did not connect and open {CHANNEL} within {} ms",
                        bound.as_millis()
                    ),
                ));
            }
        };
        let local = match audio {
            Some((track, ssrc, sender)) => {
                let payload_type = match sender.get_parameters().await {
                    Ok(parameters) => parameters
                        .rtp_parameters
                        .codecs
                        .first()
                        .map(|c| c.payload_type),
                    Err(_) => None,
                };
                payload_type.map(|payload_type| LocalTrack {
                    track,
                    ssrc,
                    payload_type,
                })
            }
            None => None,
        };
        Ok(settings.launch(pc, channel, events, local, None, Role::Server, options))
    }
}

/// The client's `oai-events` channel, once the connection is up.
async fn wait_for_channel(events: &mut Events) -> Result<Arc<dyn DataChannel>> {
    let mut state = events.state.clone();
    loop {
        tokio::select! {
            biased;
            changed = state.changed() => {
                if changed.is_err() {
                    return Err(Error::new(ErrorKind::Connect, "the peer connection ended"));
                }
                let now = *state.borrow_and_update();
                if matches!(now, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
                    return Err(Error::new(
                        ErrorKind::Connect,
                        format!("the client's connection {now} before opening {CHANNEL}"),
                    ));
                }
            }
            channel = events.channels.recv() => {
                let Some(channel) = channel else {
                    return Err(Error::new(ErrorKind::Connect, "the peer connection ended"));
                };
                match channel.label().await {
                    Ok(label) if label == CHANNEL => return Ok(channel),
                    Ok(label) => tracing::debug!(label, "a data channel other than {CHANNEL} is ignored"),
                    Err(_) => {}
                }
            }
        }
    }
}
