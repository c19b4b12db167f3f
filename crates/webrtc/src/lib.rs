//! The WebRTC transport.
