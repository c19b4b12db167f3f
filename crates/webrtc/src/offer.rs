//! The client's side of a call: the peer connection with an `oai-events` channel and an
//! Opus track, the offer posted to `{base}/realtime/calls`, the answer applied, the channel
//! opened — all within one bound — then the running call (`call.rs`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use reelthyme_transport::{
    Connecting, Connection, Endpoint, Error, ErrorKind, Options, Result, Transport, hangup,
};
use tokio::sync::watch;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::call::{CHANNEL, GATHER_WAIT, Hangup, Role, close_peer};
use crate::media::LocalTrack;
use crate::peer::{self, Events, Side, nudge, rtc_error};
use crate::settings::WebRtc;
use crate::signal;

/// Where the setup was when it stopped.
#[derive(Debug, Clone, Copy)]
enum Phase {
    PeerConnection,
    Gathering,
    Signalling,
    Answer,
    Connecting,
    Opening,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Self::PeerConnection => "setting up the peer connection",
            Self::Gathering => "gathering ICE candidates",
            Self::Signalling => "waiting for the answer to the offer",
            Self::Answer => "applying the answer",
            Self::Connecting => "connecting (ICE, DTLS)",
            Self::Opening => "opening the data channel",
        }
    }
}

/// What the setup hands to the running connection.
struct Ready {
    channel: Arc<dyn DataChannel>,
    call_id: Option<String>,
    local: Option<LocalTrack>,
}

impl WebRtc {
    /// Opens a WebRTC connection to `endpoint`: peer connection, an `oai-events` data
    /// channel and (with [`WebRtc::audio`]) one Opus track; the offer posted to
    /// `{base}/realtime/calls`; the answer applied; returned once the data channel is open.
    ///
    /// # Errors
    /// [`ErrorKind::Auth`] (401/403), [`ErrorKind::InvalidRequest`] (another 4xx; the HTTP
    /// error, with its status and the API's error, is the source), [`ErrorKind::Connect`]
    /// (5xx, unreachable, ICE or DTLS failed: retryable), [`ErrorKind::Timeout`] (the setup
    /// took longer than its bound; the message says where it stopped),
    /// [`ErrorKind::Protocol`] (an answer that is not SDP), [`ErrorKind::Config`] (a beta or
    /// sideband endpoint, a session that is not an object).
    pub async fn open(&self, endpoint: &Endpoint, options: &Options) -> Result<Connection> {
        let bound = self.setup_timeout.unwrap_or(options.connect_timeout);
        let started = Instant::now();
        let mut phase = Phase::PeerConnection;
        // Once the server has answered, a failed setup leaves a call there to hang up.
        let mut answered_call: Option<String> = None;
        let side = Side::Offerer {
            server: server_ip(endpoint),
        };
        let (pc, mut events) = peer::build(self, side).await?;
        let setup = tokio::time::timeout(
            bound,
            self.setup(
                &pc,
                &mut events,
                endpoint,
                options,
                &mut phase,
                &mut answered_call,
            ),
        )
        .await;
        let failure = match setup {
            Ok(Ok(ready)) => Ok(ready),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the WebRTC setup took longer than {} ms (stopped {})",
                    bound.as_millis(),
                    phase.describe()
                ),
            )),
        };
        let ready = match failure {
            Ok(ready) => ready,
            Err(error) => {
                close_peer(&pc).await;
                if let Some(call_id) = answered_call {
                    let hung_up = tokio::time::timeout(
                        options.close_timeout,
                        hangup(endpoint, &call_id, options),
                    )
                    .await;
                    tracing::debug!(
                        call_id,
                        ok = matches!(hung_up, Ok(Ok(()))),
                        "hung up the call whose setup failed"
                    );
                }
                return Err(error);
            }
        };
        tracing::debug!(
            call_id = ready.call_id.as_deref().unwrap_or("?"),
            setup_ms = started.elapsed().as_millis() as u64,
            "WebRTC connected"
        );

        let hangup = ready.call_id.clone().map(|call_id| Hangup {
            endpoint: endpoint.clone(),
            options: options.clone(),
            call_id,
        });
        let connection = self.launch(
            pc,
            ready.channel,
            events,
            ready.local,
            hangup,
            Role::Client,
            options,
        );
        Ok(match ready.call_id {
            Some(call_id) => connection.with_call_id(call_id),
            None => connection,
        })
    }

    async fn setup(
        &self,
        pc: &Arc<dyn PeerConnection>,
        events: &mut Events,
        endpoint: &Endpoint,
        options: &Options,
        phase: &mut Phase,
        answered_call: &mut Option<String>,
    ) -> Result<Ready> {
        let channel = pc
            .create_data_channel(CHANNEL, None)
            .await
            .map_err(|e| rtc_error(ErrorKind::Connect, "cannot create the data channel", e))?;
        // Until the channel is open, the driver needs waking (see `nudge`).
        let (opened, opened_rx) = watch::channel(false);
        nudge(channel.clone(), 0, opened_rx);
        let local = if self.audio {
            let (track, ssrc) = peer::opus_track("reelthyme")?;
            let sender = pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(|e| rtc_error(ErrorKind::Connect, "cannot add the audio track", e))?;
            Some((track, ssrc, sender))
        } else {
            None
        };

        *phase = Phase::Gathering;
        let offer = pc
            .create_offer(None)
            .await
            .map_err(|e| rtc_error(ErrorKind::Connect, "cannot create the offer", e))?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| rtc_error(ErrorKind::Connect, "cannot apply the offer", e))?;
        // The API takes one offer with its candidates (no trickle).
        let _ = tokio::time::timeout(GATHER_WAIT, events.gathered.wait_for(|done| *done)).await;
        let offer = pc
            .local_description()
            .await
            .ok_or_else(|| Error::new(ErrorKind::Connect, "the peer connection has no offer"))?;

        *phase = Phase::Signalling;
        let answer = signal::offer(endpoint, &offer.sdp, self.session.as_ref(), options).await?;
        answered_call.clone_from(&answer.call_id);

        *phase = Phase::Answer;
        let description = RTCSessionDescription::answer(answer.sdp)
            .map_err(|e| rtc_error(ErrorKind::Protocol, "the answer is not valid SDP", e))?;
        pc.set_remote_description(description)
            .await
            .map_err(|e| rtc_error(ErrorKind::Protocol, "the answer was refused", e))?;

        *phase = Phase::Connecting;
        let mut state = events.state.clone();
        loop {
            tokio::select! {
                biased;
                changed = state.changed() => {
                    if changed.is_err() {
                        return Err(Error::new(ErrorKind::Connect, "the peer connection ended"));
                    }
                    let now = *state.borrow_and_update();
                    match now {
                        RTCPeerConnectionState::Connected => *phase = Phase::Opening,
                        RTCPeerConnectionState::Failed => {
                            return Err(Error::new(
                                ErrorKind::Connect,
                                format!("the WebRTC connection failed while {}", phase.describe()),
                            ));
                        }
                        RTCPeerConnectionState::Closed => {
                            return Err(Error::new(ErrorKind::Connect, "the peer connection closed"));
                        }
                        _ => {}
                    }
                }
                event = channel.poll() => match event {
                    Some(DataChannelEvent::OnOpen) => break,
                    Some(DataChannelEvent::OnClose) | None => {
                        return Err(Error::new(
                            ErrorKind::Connect,
                            "the server closed the data channel before it opened",
                        ));
                    }
                    Some(_) => {}
                },
            }
        }
        opened.send_replace(true);

        // A server that refused the audio line still carries events: the connection
        // goes on without media, and says so.
        let local = match local {
            Some((track, ssrc, sender)) => {
                let payload_type = match sender.get_parameters().await {
                    Ok(parameters) => parameters
                        .rtp_parameters
                        .codecs
                        .first()
                        .map(|codec| codec.payload_type),
                    Err(_) => None,
                };
                if payload_type.is_none() {
                    tracing::warn!("the server's answer accepts no audio: events only");
                }
                payload_type.map(|payload_type| LocalTrack {
                    track,
                    ssrc,
                    payload_type,
                })
            }
            None => None,
        };
        Ok(Ready {
            channel,
            call_id: answer.call_id,
            local,
        })
    }
}

impl Transport for WebRtc {
    fn connect<'a>(&'a self, endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a> {
        Box::pin(self.open(endpoint, options))
    }
}

/// The signalling server's address, when it is a literal IP (the simulator's `127.0.0.1`).
fn server_ip(endpoint: &Endpoint) -> Option<IpAddr> {
    let base = endpoint.rest_base().ok()?;
    let authority = base.split("://").nth(1)?.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::from([127, 0, 0, 1]));
    }
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_recognised() {
        let ip = |base: &str| server_ip(&Endpoint::openai("m").base_url(base));
        assert_eq!(
            ip("http://127.0.0.1:4000/v1"),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            ip("http://localhost:4000/v1"),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(ip("http://[::1]:4000/v1"), "::1".parse().ok());
        assert_eq!(ip("https://api.openai.com/v1"), None);
    }
}
