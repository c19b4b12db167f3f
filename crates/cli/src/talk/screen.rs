//! What `talk` shows: a title bar, the state (turn phase, latency, input meter), the whole
//! conversation as a transcript that scrolls (newest at the bottom, wrapped to the width),
//! a note line and the keys. Pure state and rendering, so the layout is unit-tested on
//! ratatui's `TestBackend`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use reelthyme::events::{Item, ResponseStatus, ServerEvent};

/// The turn phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Listening,
    UserSpeaking,
    Thinking,
    AssistantSpeaking,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Self::Listening => "listening",
            Self::UserSpeaking => "user speaking",
            Self::Thinking => "thinking",
            Self::AssistantSpeaking => "assistant speaking",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    User,
    Assistant,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Self::User => "You:",
            Self::Assistant => "Assistant:",
        }
    }
}

/// One message of the conversation, as it grows.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) who: Who,
    /// The conversation item it shows.
    item: Option<String>,
    /// The response it belongs to (assistant entries).
    response: Option<String>,
    pub(crate) text: String,
    /// Still being spoken or written.
    live: bool,
    pub(crate) interrupted: bool,
    /// End of the user's speech → first audio played (assistant entries).
    pub(crate) latency: Option<Duration>,
}

/// Note lines under the transcript.
const NOTES: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Info,
    Warning,
}

/// Everything on the screen.
#[derive(Debug)]
pub(crate) struct Screen {
    source: String,
    started: Instant,
    pub(crate) phase: Phase,
    pub(crate) level_db: f32,
    pub(crate) muted: bool,
    /// The echo control that runs (`aec`, `half-duplex`, `off`) and, with AEC, the echo
    /// suppression measured on the microphone (dB).
    pub(crate) echo: Option<(&'static str, Option<f32>)>,
    pub(crate) entries: Vec<Entry>,
    /// The latest turn's latency (time to first audio played, from the library's metrics).
    latency: Option<Duration>,
    /// The last two notes, oldest first: a warning stays in sight when another note follows
    /// it (a malformed event, then a full microphone queue: both matter).
    notes: VecDeque<(String, Tone)>,
    /// Rows scrolled back from the bottom of the transcript (0: follow the conversation).
    scrolled: usize,
    colour: bool,
}

impl Screen {
    pub(crate) fn new(source: String, colour: bool) -> Self {
        Self {
            source,
            started: Instant::now(),
            phase: Phase::Listening,
            level_db: -96.0,
            muted: false,
            echo: None,
            entries: Vec::new(),
            latency: None,
            notes: VecDeque::with_capacity(NOTES),
            scrolled: 0,
            colour,
        }
    }

    /// Shows `text` on the note lines. The same text again only moves it last; an
    /// information note gives way to whatever follows it, so what stays beside the newest
    /// note is the latest earlier warning.
    pub(crate) fn note(&mut self, text: impl Into<String>, tone: Tone) {
        let text = text.into();
        self.notes.retain(|(shown, _)| *shown != text);
        self.notes.retain(|(_, tone)| *tone == Tone::Warning);
        if self.notes.len() == NOTES {
            self.notes.pop_front();
        }
        self.notes.push_back((text, tone));
    }

    fn entry_mut(&mut self, who: Who, item: &str) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .rev()
            .find(|e| e.who == who && e.item.as_deref() == Some(item))
    }

    fn push(&mut self, who: Who, item: Option<String>, response: Option<String>) -> &mut Entry {
        self.entries.push(Entry {
            who,
            item,
            response,
            text: String::new(),
            live: true,
            interrupted: false,
            latency: None,
        });
        self.entries.last_mut().expect("just pushed")
    }

    /// The user entry of `item`, made when the transcript comes before the speech events.
    fn user_entry(&mut self, item: &str) -> &mut Entry {
        if self.entry_mut(Who::User, item).is_none() {
            self.push(Who::User, Some(item.to_owned()), None);
        }
        self.entry_mut(Who::User, item).expect("made above")
    }

    /// The answer being spoken is cut short (barge-in, or `i`).
    pub(crate) fn interrupt_live_answer(&mut self) {
        for entry in &mut self.entries {
            if entry.who == Who::Assistant && entry.live {
                entry.live = false;
                entry.interrupted = true;
            }
        }
    }

    pub(crate) fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::InputAudioBufferSpeechStarted(started) => {
                self.phase = Phase::UserSpeaking;
                self.interrupt_live_answer();
                self.user_entry(&started.item_id).live = true;
            }
            ServerEvent::InputAudioBufferSpeechStopped(_) => {
                self.phase = Phase::Thinking;
            }
            ServerEvent::InputAudioTranscriptionDelta(delta) => {
                let text = delta.delta.as_deref().unwrap_or_default().to_owned();
                self.user_entry(&delta.item_id).text.push_str(&text);
            }
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                let entry = self.user_entry(&done.item_id);
                entry.text = done.transcript.clone();
                entry.live = false;
            }
            ServerEvent::InputAudioTranscriptionFailed(failed) => {
                let entry = self.user_entry(&failed.item_id);
                entry.live = false;
                if entry.text.is_empty() {
                    entry.text = "(not transcribed)".into();
                }
            }
            ServerEvent::ResponseOutputItemAdded(added) => {
                if let Item::Message(message) = &added.item {
                    let item = message.id.clone();
                    self.push(Who::Assistant, item, Some(added.response_id.clone()));
                }
            }
            ServerEvent::ResponseOutputAudioTranscriptDelta(delta)
            | ServerEvent::ResponseOutputTextDelta(delta) => {
                match self.entry_mut(Who::Assistant, &delta.item_id) {
                    Some(entry) => entry.text.push_str(&delta.delta),
                    None => {
                        let entry = self.push(
                            Who::Assistant,
                            Some(delta.item_id.clone()),
                            Some(delta.response_id.clone()),
                        );
                        entry.text.push_str(&delta.delta);
                    }
                }
            }
            ServerEvent::ResponseDone(done) => {
                let id = done.response.id.as_deref();
                let status = done.response.status.as_ref();
                for entry in &mut self.entries {
                    if entry.who == Who::Assistant
                        && entry.response.as_deref() == id
                        && id.is_some()
                    {
                        entry.live = false;
                        if matches!(
                            status,
                            Some(ResponseStatus::Cancelled | ResponseStatus::Incomplete)
                        ) {
                            entry.interrupted = true;
                        }
                    }
                }
                if let Some(ResponseStatus::Failed) = status {
                    self.note("the response failed", Tone::Warning);
                }
            }
            // A barge-in races the server's own cancellation of the answer: that the
            // answer was already over is no news to the user.
            ServerEvent::Error(error)
                if error.error.code() == Some("response_cancel_not_active") => {}
            ServerEvent::Error(error) => {
                self.note(format!("server: {}", error.error.message), Tone::Warning)
            }
            _ => {}
        }
    }

    /// A turn's numbers from [`reelthyme::Metrics`] (in progress or finished): its time to
    /// first audio played goes on its answer and in the state line, once.
    pub(crate) fn on_metrics(&mut self, turn: &reelthyme::TurnMetrics) {
        let Some(latency) = turn.time_to_first_audio else {
            return;
        };
        let entry = self.entries.iter_mut().find(|e| {
            e.who == Who::Assistant && e.response.as_deref() == Some(turn.response_id.as_str())
        });
        if let Some(entry) = entry
            && entry.latency.is_none()
        {
            entry.latency = Some(latency);
            self.latency = Some(latency);
            if self.phase == Phase::Thinking {
                self.phase = Phase::AssistantSpeaking;
            }
        }
    }

    /// Called every redraw: the assistant speaks while audio is queued, and stops when
    /// nothing is left to play.
    pub(crate) fn on_tick(&mut self, backlog_ms: u64) {
        if self.phase == Phase::Thinking && backlog_ms > 0 {
            self.phase = Phase::AssistantSpeaking;
        }
        if self.phase == Phase::AssistantSpeaking && backlog_ms == 0 {
            self.phase = Phase::Listening;
        }
    }

    /// Scrolls the transcript back (`rows` > 0) or forward.
    pub(crate) fn scroll(&mut self, rows: isize) {
        self.scrolled = self.scrolled.saturating_add_signed(rows);
    }

    /// Follows the conversation again.
    pub(crate) fn follow(&mut self) {
        self.scrolled = 0;
    }

    fn style(&self, colour: Color) -> Style {
        if self.colour {
            Style::new().fg(colour)
        } else {
            Style::new()
        }
    }

    /// The transcript wrapped to `width` columns: a label column, the text beside it.
    fn transcript_rows(&self, width: u16) -> Vec<Line<'static>> {
        let label_width = Who::Assistant.label().len() + 1;
        let text_width = usize::from(width).saturating_sub(label_width).max(10);
        let mut rows = Vec::new();
        for entry in &self.entries {
            let (label_style, text_style) = match entry.who {
                Who::User => (self.style(Color::Cyan), Style::new()),
                Who::Assistant => (self.style(Color::Green), Style::new()),
            };
            let mut text = entry.text.clone();
            if text.is_empty() {
                text.push('…');
            } else if entry.live {
                text.push_str(" …");
            }
            let mut suffix = Vec::new();
            if entry.interrupted {
                suffix.push(Span::styled(
                    " [interrupted]",
                    self.style(Color::Yellow).add_modifier(Modifier::ITALIC),
                ));
            }
            if let Some(latency) = entry.latency {
                suffix.push(Span::styled(
                    format!(" ({} ms)", latency.as_millis()),
                    self.style(Color::DarkGray),
                ));
            }
            let wrapped = textwrap::wrap(&text, textwrap::Options::new(text_width));
            let last = wrapped.len().saturating_sub(1);
            for (index, piece) in wrapped.iter().enumerate() {
                let label = if index == 0 { entry.who.label() } else { "" };
                let mut spans = vec![
                    Span::styled(
                        format!("{label:<label_width$}"),
                        label_style.add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(piece.to_string(), text_style),
                ];
                if index == last {
                    spans.extend(suffix.iter().cloned());
                }
                rows.push(Line::from(spans));
            }
        }
        rows
    }

    /// How the conversation went, in a line: answers, latency, interruptions.
    pub(crate) fn summary(&self) -> Option<String> {
        let answers: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.who == Who::Assistant)
            .collect();
        if answers.is_empty() {
            return None;
        }
        let mut latencies: Vec<u128> = answers
            .iter()
            .filter_map(|e| e.latency.map(|l| l.as_millis()))
            .collect();
        latencies.sort_unstable();
        let interrupted = answers.iter().filter(|e| e.interrupted).count();
        let mut line = format!(
            "{} answer{}",
            answers.len(),
            if answers.len() == 1 { "" } else { "s" }
        );
        if let Some(median) = latencies.get(latencies.len() / 2) {
            line.push_str(&format!(", median latency {median} ms"));
        }
        if interrupted > 0 {
            line.push_str(&format!(", {interrupted} interrupted"));
        }
        Some(line)
    }

    /// The conversation as plain text, for the terminal's scrollback once `talk` ends.
    pub(crate) fn transcript_text(&self) -> String {
        let label_width = Who::Assistant.label().len() + 1;
        self.entries
            .iter()
            .filter(|e| !e.text.is_empty())
            .map(|e| {
                let mut line = format!("{:<label_width$}{}", e.who.label(), e.text.trim_end());
                if e.interrupted {
                    line.push_str(" [interrupted]");
                }
                if let Some(latency) = e.latency {
                    line.push_str(&format!(" ({} ms)", latency.as_millis()));
                }
                line.push('\n');
                line
            })
            .collect()
    }

    pub(crate) fn render(&mut self, frame: &mut Frame<'_>) {
        let [title, status, rule, transcript, note, keys] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(2),
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(NOTES as u16),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        self.render_title(frame, title);
        self.render_status(frame, status);
        let rule_style = self.style(Color::DarkGray);
        frame.render_widget(
            Paragraph::new("─".repeat(usize::from(rule.width))).style(rule_style),
            rule,
        );
        self.render_transcript(frame, transcript);
        let lines: Vec<Line<'_>> = self
            .notes
            .iter()
            .map(|(text, tone)| {
                let style = match tone {
                    Tone::Info => Style::new(),
                    Tone::Warning => self.style(Color::Red),
                };
                Line::styled(text.as_str(), style)
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), note);
        frame.render_widget(
            Paragraph::new("m mute · i interrupt · PgUp/PgDn scroll · q or Ctrl-C quit")
                .style(self.style(Color::DarkGray)),
            keys,
        );
    }

    fn render_title(&self, frame: &mut Frame<'_>, area: Rect) {
        let elapsed = self.started.elapsed().as_secs();
        let clock = format!("{:02}:{:02}", elapsed / 60, elapsed % 60);
        let room = usize::from(area.width).saturating_sub(clock.len() + 1);
        let title: String = format!("reelthyme talk — {}", self.source)
            .chars()
            .take(room)
            .collect();
        let gap = usize::from(area.width)
            .saturating_sub(title.chars().count() + clock.len())
            .max(1);
        let style = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        frame.render_widget(
            Paragraph::new(format!("{title}{}{clock}", " ".repeat(gap))).style(style),
            area,
        );
    }

    fn render_status(&self, frame: &mut Frame<'_>, area: Rect) {
        let phase_colour = match self.phase {
            Phase::Listening => Color::Reset,
            Phase::UserSpeaking => Color::Cyan,
            Phase::Thinking => Color::Yellow,
            Phase::AssistantSpeaking => Color::Green,
        };
        let filled = (((self.level_db + 60.0) / 60.0).clamp(0.0, 1.0) * 20.0).round() as usize;
        let meter_colour = match self.level_db {
            db if db > -6.0 => Color::Red,
            db if db > -20.0 => Color::Yellow,
            _ => Color::Green,
        };
        let latency = self
            .latency
            .map_or("-".to_owned(), |l| format!("{} ms", l.as_millis()));
        let state = Line::from(vec![
            Span::raw("State: "),
            Span::styled(
                format!("{:<18}", self.phase.label()),
                self.style(phase_colour).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" Latency: {latency}")),
            Span::raw(match self.echo {
                Some((mode, Some(db))) => format!(" Echo: {mode} {db:.0} dB"),
                Some((mode, None)) => format!(" Echo: {mode}"),
                None => String::new(),
            }),
        ]);
        let meter = Line::from(vec![
            Span::raw("Mic:   ["),
            Span::styled("#".repeat(filled), self.style(meter_colour)),
            Span::styled("-".repeat(20 - filled), self.style(Color::DarkGray)),
            Span::raw(format!("] {:>4.0} dBFS", self.level_db.max(-96.0))),
            Span::styled(
                if self.muted { "  (muted)" } else { "" },
                self.style(Color::Yellow).add_modifier(Modifier::BOLD),
            ),
        ]);
        frame.render_widget(Paragraph::new(vec![state, meter]), area);
    }

    fn render_transcript(&mut self, frame: &mut Frame<'_>, area: Rect) {
        let rows = self.transcript_rows(area.width);
        let height = usize::from(area.height);
        if rows.is_empty() {
            frame.render_widget(
                Paragraph::new("Say something — the conversation appears here.")
                    .style(self.style(Color::DarkGray)),
                area,
            );
            return;
        }
        let max_scroll = rows.len().saturating_sub(height);
        self.scrolled = self.scrolled.min(max_scroll);
        let end = rows.len() - self.scrolled;
        let start = end.saturating_sub(height);
        let mut visible: Vec<Line<'static>> = rows[start..end].to_vec();
        if self.scrolled > 0
            && let Some(last) = visible.last_mut()
        {
            *last = Line::from(Span::styled(
                format!(
                    "↓ {} more rows — End follows the conversation",
                    self.scrolled
                ),
                self.style(Color::Yellow),
            ));
        }
        frame.render_widget(Paragraph::new(visible), area);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn event(json: serde_json::Value) -> ServerEvent {
        ServerEvent::from_json(&json.to_string()).unwrap()
    }

    fn turn(screen: &mut Screen, n: usize, user: &str, answer: &str) {
        let (item, reply, response) = (
            format!("item_u{n}"),
            format!("item_a{n}"),
            format!("resp_{n}"),
        );
        screen.on_event(&event(serde_json::json!({"type": "input_audio_buffer.speech_started", "event_id": "e", "audio_start_ms": 0, "item_id": item})));
        screen.on_event(&event(serde_json::json!({"type": "input_audio_buffer.speech_stopped", "event_id": "e", "audio_end_ms": 900, "item_id": item})));
        screen.on_event(&event(serde_json::json!({"type": "conversation.item.input_audio_transcription.completed", "event_id": "e", "item_id": item, "content_index": 0, "transcript": user})));
        screen.on_event(&event(serde_json::json!({"type": "response.output_item.added", "event_id": "e", "response_id": response, "output_index": 0,
            "item": {"id": reply, "type": "message", "role": "assistant", "content": []}})));
        screen.on_event(&event(serde_json::json!({"type": "response.output_audio_transcript.delta", "event_id": "e", "response_id": response, "item_id": reply, "output_index": 0, "content_index": 0, "delta": answer})));
    }

    fn rendered(screen: &mut Screen, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| screen.render(frame)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn a_warning_stays_in_sight_when_another_note_follows() {
        let mut screen = Screen::new("test".into(), false);
        let notes = |screen: &mut Screen| {
            let rows = rendered(screen, 80, 12);
            rows[rows.len() - 3..rows.len() - 1].to_vec()
        };
        screen.note("reconnected", Tone::Info);
        screen.note("skipped an event from the server", Tone::Warning);
        screen.note("microphone audio is being dropped", Tone::Warning);
        assert_eq!(
            notes(&mut screen),
            [
                "skipped an event from the server",
                "microphone audio is being dropped"
            ]
        );
        // The same warning again moves it last instead of showing it twice; an information
        // note gives way to what follows.
        screen.note("skipped an event from the server", Tone::Warning);
        screen.note("connected", Tone::Info);
        screen.note("the response failed", Tone::Warning);
        assert_eq!(
            notes(&mut screen),
            ["skipped an event from the server", "the response failed"]
        );
    }

    #[test]
    fn the_status_shows_the_echo_control_and_its_suppression() {
        let mut screen = Screen::new("test".into(), false);
        let status = |screen: &mut Screen| rendered(screen, 80, 12).join("\n");
        assert!(!status(&mut screen).contains("Echo:"));
        screen.echo = Some(("aec", None));
        assert!(
            status(&mut screen).contains("Echo: aec"),
            "{}",
            status(&mut screen)
        );
        screen.echo = Some(("aec", Some(41.6)));
        assert!(
            status(&mut screen).contains("Echo: aec 42 dB"),
            "{}",
            status(&mut screen)
        );
        screen.echo = Some(("half-duplex", None));
        assert!(status(&mut screen).contains("Echo: half-duplex"));
    }

    #[test]
    fn every_turn_stays_on_screen_in_order_wrapped_to_the_width() {
        let mut screen = Screen::new("test".into(), false);
        turn(
            &mut screen,
            1,
            "What is the weather like in Paris today?",
            "Sunny and mild, with a light breeze from the west all afternoon.",
        );
        turn(&mut screen, 2, "And tomorrow?", "Rain.");
        let rows = rendered(&mut screen, 40, 16);
        let text = rows.join("\n");
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} in\n{text}"))
        };
        assert!(
            at("What is the weather") < at("Sunny and") && at("Sunny and") < at("And tomorrow?")
        );
        assert!(at("And tomorrow?") < at("Rain."), "{text}");
        // Wrapped under the text column, not under the label.
        let continued = rows.iter().find(|r| r.contains("breeze")).unwrap();
        assert!(
            continued.starts_with("           ") && !continued.trim().is_empty(),
            "{text}"
        );
        assert!(rows.iter().all(|r| r.chars().count() <= 40));
    }

    #[test]
    fn a_long_conversation_scrolls_newest_at_the_bottom_and_back() {
        let mut screen = Screen::new("test".into(), false);
        for n in 0..12 {
            turn(
                &mut screen,
                n,
                &format!("question {n}"),
                &format!("answer {n}"),
            );
        }
        let rows = rendered(&mut screen, 60, 12);
        let text = rows.join("\n");
        assert!(
            text.contains("answer 11") && !text.contains("question 0 "),
            "{text}"
        );
        assert!(!text.contains("question 3\n"), "{text}");
        screen.scroll(100);
        let text = rendered(&mut screen, 60, 12).join("\n");
        assert!(
            text.contains("question 0") && text.contains("more rows"),
            "{text}"
        );
        screen.follow();
        assert!(
            rendered(&mut screen, 60, 12)
                .join("\n")
                .contains("answer 11")
        );
    }

    #[test]
    fn a_barge_in_marks_the_answer_interrupted_and_keeps_it() {
        let mut screen = Screen::new("test".into(), false);
        turn(&mut screen, 1, "Tell me a long story", "Once upon a time");
        turn(&mut screen, 2, "Stop", "OK.");
        let text = rendered(&mut screen, 80, 12).join("\n");
        assert!(text.contains("Once upon a time [interrupted]"), "{text}");
        assert!(text.contains("OK. …"), "{text}");
        assert!(
            screen
                .transcript_text()
                .contains("Once upon a time [interrupted]")
        );
        assert_eq!(
            screen.summary().as_deref(),
            Some("2 answers, 1 interrupted")
        );
    }

    #[test]
    fn without_colour_nothing_is_coloured() {
        let mut screen = Screen::new("test".into(), false);
        turn(&mut screen, 1, "hi", "hello");
        let mut terminal = Terminal::new(TestBackend::new(60, 10)).unwrap();
        terminal.draw(|frame| screen.render(frame)).unwrap();
        let buffer = terminal.backend().buffer();
        assert!(
            buffer
                .content()
                .iter()
                .all(|cell| cell.fg == Color::Reset && cell.bg == Color::Reset)
        );
        let mut screen = Screen::new("test".into(), true);
        turn(&mut screen, 1, "hi", "hello");
        terminal.draw(|frame| screen.render(frame)).unwrap();
        assert!(
            terminal
                .backend()
                .buffer()
                .content()
                .iter()
                .any(|cell| cell.fg == Color::Cyan)
        );
    }
}
