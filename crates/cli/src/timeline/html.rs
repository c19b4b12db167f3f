//! The timeline as one HTML page: a summary, the picture (inline SVG), a legend and a table
//! of the turns with the same numbers. No script and nothing fetched: it opens anywhere,
//! offline, and prints. Every shape has a `<title>` (a tooltip, and what screen readers
//! say) and a text label where there is room; colour is never the only cue.
//!
//! Written by hand rather than with a template engine: one page, a few loops, and an
//! escape function — less to audit than a templating dependency.

use std::fmt::Write;

use super::{Input, MarkKind, Timeline};

/// Escapes text for HTML and SVG, in content and in attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds with two decimals.
fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// At most `chars` characters of `text`, with an ellipsis when cut.
fn fit(text: &str, chars: usize) -> Option<String> {
    let text = text.trim();
    if chars < 3 || text.is_empty() {
        return None;
    }
    if text.chars().count() <= chars {
        return Some(text.to_owned());
    }
    // A stub of a word or two says nothing; the tooltip and the table have it all.
    if chars < 8 {
        return None;
    }
    let cut: String = text.chars().take(chars - 1).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// Roughly how many characters of 12 px text fit in `width` pixels.
fn chars_in(width: f64) -> usize {
    ((width - 8.0) / 6.6).max(0.0) as usize
}

/// Where things go.
struct Scale {
    left: f64,
    width: f64,
    end_t: u64,
}

impl Scale {
    fn x(&self, t: u64) -> f64 {
        self.left + self.width * t as f64 / self.end_t.max(1) as f64
    }

    fn span(&self, from: u64, to: u64) -> (f64, f64) {
        let x = self.x(from);
        (x, (self.x(to) - x).max(3.0))
    }
}

const LANE_LABELS: f64 = 96.0;
const TOP: f64 = 34.0;
const YOU_Y: f64 = TOP;
const LANE_H: f64 = 46.0;
const LATENCY_Y: f64 = YOU_Y + LANE_H + 4.0;
const ASSISTANT_Y: f64 = LATENCY_Y + 30.0;
const AUDIO_Y: f64 = ASSISTANT_Y + LANE_H + 8.0;
const AUDIO_H: f64 = 16.0;
const EVENTS_Y: f64 = AUDIO_Y + AUDIO_H + 14.0;
const EVENT_ROW: f64 = 20.0;

/// A tick step (ms) that leaves at least 70 px between ticks.
fn tick_step(scale: &Scale) -> u64 {
    let per_ms = scale.width / scale.end_t.max(1) as f64;
    [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000,
    ]
    .into_iter()
    .find(|step| *step as f64 * per_ms >= 70.0)
    .unwrap_or(600_000)
}

fn tick_label(ms: u64, step: u64) -> String {
    if step < 1_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms >= 60_000 && step >= 10_000 {
        format!("{}:{:02}", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{} s", ms / 1000)
    }
}

/// The picture.
fn svg(timeline: &Timeline) -> String {
    // A little room after the last event, so that nothing ends on the edge.
    let end_t = (timeline.end_t + timeline.end_t / 40).max(1000);
    let width = (end_t as f64 / 1000.0 * 110.0).clamp(960.0, 30_000.0);
    let scale = Scale {
        left: LANE_LABELS,
        width,
        end_t,
    };
    // Marks are packed into rows so that their labels do not overlap.
    let mut rows_end: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for (index, mark) in timeline.marks.iter().enumerate() {
        if mark.kind == MarkKind::BargeIn {
            continue;
        }
        let x = scale.x(mark.t);
        let label = mark_label(&mark.kind);
        let label_end = x + 12.0 + label.chars().count() as f64 * 6.6;
        let row = match rows_end.iter().position(|end| *end < x - 4.0) {
            Some(row) => row,
            None => {
                rows_end.push(0.0);
                rows_end.len() - 1
            }
        };
        rows_end[row] = label_end;
        placed.push((index, row));
    }
    let event_rows = rows_end.len().max(1) as f64;
    let axis_y = EVENTS_Y + event_rows * EVENT_ROW + 8.0;
    let height = axis_y + 30.0;
    let total_width = LANE_LABELS + width + 40.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_width:.0}" height="{height:.0}" viewBox="0 0 {total_width:.0} {height:.0}" role="img" aria-labelledby="svg-title svg-desc" class="timeline">"#
    );
    let _ = write!(
        s,
        r#"<title id="svg-title">Session timeline</title><desc id="svg-desc">{} user speech spans, {} responses, {} barge-ins over {}. The table below has the same numbers.</desc>"#,
        timeline.speech.len(),
        timeline.responses.len(),
        timeline.barge_ins(),
        secs(timeline.end_t)
    );
    // Grid and axis.
    let step = tick_step(&scale);
    s.push_str(r#"<g class="grid" aria-hidden="true">"#);
    let mut t = 0;
    while t <= end_t {
        let x = scale.x(t);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP:.0}" x2="{x:.1}" y2="{axis_y:.0}"/><text class="tick" x="{x:.1}" y="{:.0}">{}</text>"#,
            axis_y + 16.0,
            tick_label(t, step)
        );
        t += step;
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{:.0}" y1="{axis_y:.0}" x2="{:.0}" y2="{axis_y:.0}"/></g>"#,
        scale.left,
        scale.left + width
    );
    // Lane labels and backgrounds.
    for (y, h, label) in [
        (YOU_Y, LANE_H, "You"),
        (ASSISTANT_Y, LANE_H, "Assistant"),
        (AUDIO_Y, AUDIO_H, "Audio out"),
        (EVENTS_Y, event_rows * EVENT_ROW, "Events"),
    ] {
        let _ = write!(
            s,
            r#"<rect class="lane" x="{:.0}" y="{y:.0}" width="{width:.0}" height="{h:.0}"/><text class="lane-label" x="{:.0}" y="{:.0}">{label}</text>"#,
            scale.left,
            scale.left - 10.0,
            y + h / 2.0 + 4.0
        );
    }
    // Turn numbers, as in the table, to find one in the other.
    let turn_of = |input: Input| {
        timeline
            .turns
            .iter()
            .position(|t| t.input == Some(input))
            .map_or(String::new(), |n| format!("{}. ", n + 1))
    };
    // User speech.
    for (n, speech) in timeline.speech.iter().enumerate() {
        let end = speech.end_t.unwrap_or(timeline.end_t);
        let (x, w) = scale.span(speech.start_t, end);
        let audio = match (speech.audio_start_ms, speech.audio_end_ms) {
            (Some(a), Some(b)) => format!(" (input audio {a}–{b} ms)"),
            (Some(a), None) => format!(" (input audio from {a} ms)"),
            _ => String::new(),
        };
        let words = speech.transcript.as_deref().unwrap_or("(no transcript)");
        let number = turn_of(Input::Speech(n));
        let _ = write!(
            s,
            r#"<g class="speech" id="speech-{n}"><title>You spoke {}–{}{audio}: “{}”</title><rect x="{x:.1}" y="{YOU_Y:.0}" width="{w:.1}" height="{LANE_H:.0}" rx="5"/>"#,
            secs(speech.start_t),
            secs(end),
            esc(words)
        );
        if let Some(label) = fit(&format!("{number}{words}"), chars_in(w)) {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.0}">{}</text>"#,
                x + 6.0,
                YOU_Y + LANE_H / 2.0 + 4.0,
                esc(&label)
            );
        }
        s.push_str("</g>");
    }
    // Typed user messages.
    for text in &timeline.texts {
        let x = scale.x(text.t);
        let y = YOU_Y + LANE_H / 2.0;
        let _ = write!(
            s,
            r#"<g class="typed"><title>You typed at {}: “{}”</title><path d="M{x:.1} {:.1} l7 7 l-7 7 l-7 -7 z"/><text x="{:.1}" y="{:.0}">{}</text></g>"#,
            secs(text.t),
            esc(&text.text),
            y - 7.0,
            x + 10.0,
            y + 4.0,
            esc(&fit(&text.text, 24).unwrap_or_default())
        );
    }
    // Responses and their audio.
    for (n, response) in timeline.responses.iter().enumerate() {
        let end = response.done_t.unwrap_or(timeline.end_t);
        let (x, w) = scale.span(response.created_t, end);
        let status = response.status.as_deref().unwrap_or("unfinished");
        let class = if status == "failed" {
            "response failed"
        } else if response.interrupted {
            "response interrupted"
        } else {
            "response"
        };
        let words = if response.text.is_empty() {
            "(no words)"
        } else {
            response.text.as_str()
        };
        let interrupted = if response.interrupted {
            ", interrupted"
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<g class="{class}" id="response-{n}"><title>Assistant ({}): {}–{}, {status}{interrupted}: “{}”</title><rect x="{x:.1}" y="{ASSISTANT_Y:.0}" width="{w:.1}" height="{LANE_H:.0}" rx="5"/>"#,
            esc(&response.id),
            secs(response.created_t),
            secs(end),
            esc(words)
        );
        let number = timeline
            .turns
            .iter()
            .position(|t| t.response == n)
            .map_or(String::new(), |n| format!("{}. ", n + 1));
        if let Some(label) = fit(&format!("{number}{words}"), chars_in(w)) {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.0}">{}</text>"#,
                x + 6.0,
                ASSISTANT_Y + LANE_H / 2.0 + 4.0,
                esc(&label)
            );
        }
        s.push_str("</g>");
        if let Some((first, last)) = response.audio {
            let (x, w) = scale.span(first, last);
            let _ = write!(
                s,
                r#"<g class="audio"><title>Audio of {}: deltas {}–{}</title><rect x="{x:.1}" y="{AUDIO_Y:.0}" width="{w:.1}" height="{AUDIO_H:.0}" rx="3"/></g>"#,
                esc(&response.id),
                secs(first),
                secs(last)
            );
        }
    }
    // Latency brackets: end of the user's input → the answer's first delta.
    for turn in &timeline.turns {
        let (Some(latency), Some(input)) = (turn.latency_ms, turn.input) else {
            continue;
        };
        let response = &timeline.responses[turn.response];
        let Some(first) = response.first_delta_t else {
            continue;
        };
        let from = match input {
            Input::Speech(i) => timeline.speech[i].end_t.unwrap_or_default(),
            Input::Text(i) => timeline.texts[i].t,
        };
        let (x1, x2) = (scale.x(from), scale.x(first).max(scale.x(from) + 2.0));
        let y = LATENCY_Y + 18.0;
        let _ = write!(
            s,
            r#"<g class="latency"><title>Latency {latency} ms: end of your turn at {} → first answer delta at {}</title><path d="M{x1:.1} {:.1} V{y:.1} H{x2:.1} V{:.1}"/><text x="{:.1}" y="{:.1}">{latency} ms</text></g>"#,
            secs(from),
            secs(first),
            y - 6.0,
            y + 6.0,
            (x1 + x2) / 2.0,
            y - 5.0,
        );
    }
    // Barge-ins across every lane, then the other marks in their rows.
    for mark in timeline
        .marks
        .iter()
        .filter(|m| m.kind == MarkKind::BargeIn)
    {
        let x = scale.x(mark.t);
        let response = mark
            .response
            .map(|r| format!(" over {}", esc(&timeline.responses[r].id)))
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<g class="barge"><title>Barge-in at {}: you spoke{response} while the assistant was answering</title><line x1="{x:.1}" y1="{:.0}" x2="{x:.1}" y2="{axis_y:.0}"/><rect class="flag" x="{:.1}" y="6" width="66" height="18" rx="9"/><text x="{x:.1}" y="19">barge-in</text></g>"#,
            secs(mark.t),
            TOP - 8.0,
            x - 33.0,
        );
    }
    for (index, row) in placed {
        let mark = &timeline.marks[index];
        let x = scale.x(mark.t);
        let y = EVENTS_Y + row as f64 * EVENT_ROW + EVENT_ROW / 2.0;
        let (class, title) = match &mark.kind {
            MarkKind::Cancel => (
                "cancel",
                format!("response.cancel sent at {}", secs(mark.t)),
            ),
            MarkKind::Truncate { audio_end_ms } => (
                "truncate",
                format!(
                    "conversation.item.truncate at {}: the answer's audio cut at {audio_end_ms} ms (what was played)",
                    secs(mark.t)
                ),
            ),
            MarkKind::Error { message } => (
                "error",
                format!("error at {}: {}", secs(mark.t), esc(message)),
            ),
            MarkKind::BargeIn => continue,
        };
        let _ = write!(
            s,
            r#"<g class="mark {class}"><title>{title}</title><circle cx="{x:.1}" cy="{y:.1}" r="5"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
            x + 9.0,
            y + 4.0,
            esc(&mark_label(&mark.kind))
        );
        if let MarkKind::Truncate { .. } = mark.kind {
            let _ = write!(
                s,
                r#"<path class="cut" d="M{:.1} {:.1} h10 l-5 8 z" aria-hidden="true"/>"#,
                x - 5.0,
                AUDIO_Y - 9.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn mark_label(kind: &MarkKind) -> String {
    match kind {
        MarkKind::BargeIn => "barge-in".into(),
        MarkKind::Cancel => "cancel".into(),
        MarkKind::Truncate { audio_end_ms } => format!("truncated at {audio_end_ms} ms"),
        MarkKind::Error { message } => {
            format!("error: {}", fit(message, 36).unwrap_or_default())
        }
    }
}

const CSS: &str = r#"
:root { --user: #1d4ed8; --user-bg: #dbeafe; --assistant: #047857; --assistant-bg: #d1fae5;
  --audio: #10b981; --cut: #b45309; --cut-bg: #fef3c7; --barge: #dc2626; --latency: #6d28d9;
  --fail: #b91c1c; --fail-bg: #fee2e2; --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; padding: 28px 32px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: var(--muted); margin: 0 0 18px; }
.stats { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 18px; }
.stat { border: 1px solid var(--line); border-radius: 10px; padding: 8px 14px; min-width: 130px; }
.stat .k { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.stat .v { font-size: 20px; font-weight: 600; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 10px; padding: 8px 4px 2px; }
svg.timeline { display: block; font: 12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
svg .grid line { stroke: #f1f5f9; } svg .grid .axis { stroke: #94a3b8; }
svg .tick { fill: var(--muted); text-anchor: middle; }
svg .lane { fill: #f8fafc; }
svg .lane-label { fill: var(--ink); font-weight: 600; text-anchor: end; }
svg .speech rect { fill: var(--user-bg); stroke: var(--user); stroke-width: 1.5; }
svg .speech text, svg .typed text { fill: #1e3a8a; }
svg .typed path { fill: var(--user); }
svg .response rect { fill: var(--assistant-bg); stroke: var(--assistant); stroke-width: 1.5; }
svg .response text { fill: #064e3b; }
svg .response.interrupted rect { fill: var(--cut-bg); stroke: var(--cut); stroke-dasharray: 5 3; }
svg .response.interrupted text { fill: #78350f; }
svg .response.failed rect { fill: var(--fail-bg); stroke: var(--fail); }
svg .audio rect { fill: var(--audio); }
svg .latency path { fill: none; stroke: var(--latency); stroke-width: 1.5; }
svg .latency text { fill: var(--latency); font-weight: 600; text-anchor: middle; }
svg .barge line { stroke: var(--barge); stroke-width: 2; stroke-dasharray: 6 4; }
svg .barge .flag { fill: var(--barge); }
svg .barge text { fill: #fff; font-weight: 600; text-anchor: middle; }
svg .mark circle { fill: #fff; stroke-width: 2; }
svg .mark text { fill: var(--ink); }
svg .cancel circle { stroke: var(--barge); } svg .truncate circle { stroke: var(--cut); }
svg .error circle { stroke: var(--fail); fill: var(--fail); }
svg .cut { fill: var(--cut); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; list-style: none; padding: 0; margin: 10px 2px 0; color: var(--ink); }
.legend li { display: flex; align-items: center; gap: 6px; }
.sw { display: inline-block; width: 22px; height: 12px; border-radius: 3px; border: 1.5px solid; }
.sw.you { background: var(--user-bg); border-color: var(--user); }
.sw.assistant { background: var(--assistant-bg); border-color: var(--assistant); }
.sw.interrupted { background: var(--cut-bg); border-color: var(--cut); border-style: dashed; }
.sw.audio { background: var(--audio); border-color: var(--audio); height: 8px; }
.sw.latency { border-width: 0 2px 2px 2px; border-color: var(--latency); border-radius: 0; height: 8px; }
.sw.barge { width: 0; border-width: 0 0 0 2px; border-style: dashed; border-color: var(--barge); border-radius: 0; height: 16px; }
table { border-collapse: collapse; width: 100%; max-width: 1200px; }
caption { text-align: left; color: var(--muted); padding-bottom: 6px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.words { max-width: 380px; }
.tag { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.tag.ok { background: var(--assistant-bg); color: #065f46; }
.tag.cut { background: var(--cut-bg); color: #92400e; }
.tag.fail { background: var(--fail-bg); color: #991b1b; }
.tag.barge { background: var(--barge); color: #fff; }
footer { color: var(--muted); margin-top: 22px; max-width: 900px; font-size: 13px; }
"#;

/// The whole page.
pub(crate) fn page(timeline: &Timeline, title: &str, model: Option<&str>) -> String {
    let barge_ins = timeline.barge_ins();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Timeline of {}</title><style>{CSS}</style></head><body>"#,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<header><h1>Session timeline</h1><p class="sub">{}{} · recorded by reelthyme</p></header>"#,
        esc(title),
        model.map(|m| format!(" · {}", esc(m))).unwrap_or_default()
    );
    let median = timeline
        .median_latency_ms()
        .map_or("–".to_owned(), |ms| format!("{ms} ms"));
    s.push_str(r#"<section class="stats" aria-label="Summary">"#);
    for (k, v) in [
        ("Duration", secs(timeline.end_t)),
        ("Turns", timeline.turns.len().to_string()),
        ("Median latency", median),
        ("Barge-ins", barge_ins.to_string()),
    ] {
        let _ = write!(
            s,
            r#"<div class="stat"><span class="k">{k}</span><span class="v">{v}</span></div>"#
        );
    }
    s.push_str("</section>");
    s.push_str(r#"<figure style="margin:0"><div class="scroll">"#);
    s.push_str(&svg(timeline));
    s.push_str(
        r#"</div><figcaption><ul class="legend" aria-label="Legend">
<li><span class="sw you"></span>You speaking (server VAD), with your transcript; ◆ a typed message</li>
<li><span class="sw assistant"></span>Assistant response (created → done), with its words</li>
<li><span class="sw interrupted"></span>Interrupted or cancelled response</li>
<li><span class="sw audio"></span>Audio out (first → last audio delta)</li>
<li><span class="sw latency"></span>Latency: end of your turn → first answer delta</li>
<li><span class="sw barge"></span>Barge-in: you spoke during an answer</li>
<li>○ cancel / truncation (where the answer's audio was cut)</li>
</ul></figcaption></figure>"#,
    );
    s.push_str(r#"<h2 id="turns">Turns</h2><table aria-labelledby="turns"><caption>Each response and the user input it answered. Times from the start of the recording.</caption><thead><tr><th scope="col">#</th><th scope="col">You</th><th scope="col">Speech</th><th scope="col">Assistant</th><th scope="col">Response</th><th scope="col">Status</th><th scope="col">Latency</th></tr></thead><tbody>"#);
    for (n, turn) in timeline.turns.iter().enumerate() {
        let response = &timeline.responses[turn.response];
        let you = match (timeline.input_text(turn.input), turn.input) {
            (Some(text), _) => esc(text),
            (None, Some(Input::Speech(_))) => "(no transcript)".into(),
            (None, _) => "—".into(),
        };
        let speech = match turn.input {
            Some(Input::Speech(i)) => {
                let sp = &timeline.speech[i];
                format!(
                    "{}–{}",
                    secs(sp.start_t),
                    sp.end_t.map_or("…".to_owned(), secs)
                )
            }
            Some(Input::Text(i)) => format!("typed at {}", secs(timeline.texts[i].t)),
            None => "—".into(),
        };
        let status = response.status.as_deref().unwrap_or("unfinished");
        let mut tags = String::new();
        let class = match status {
            "completed" if !response.interrupted => "ok",
            "failed" => "fail",
            _ => "cut",
        };
        let _ = write!(tags, r#"<span class="tag {class}">{}</span>"#, esc(status));
        if turn.barge_in {
            tags.push_str(r#" <span class="tag barge">barge-in</span>"#);
        }
        if let Some(ms) = response.truncated_at_ms {
            let _ = write!(tags, " truncated at {ms} ms");
        }
        let latency = turn
            .latency_ms
            .map_or("—".to_owned(), |ms| format!("{ms} ms"));
        let _ = write!(
            s,
            r#"<tr class="turn"><td class="num">{}</td><td class="words">{you}</td><td class="num">{speech}</td><td class="words">{}</td><td class="num">{}–{}</td><td>{tags}</td><td class="num latency">{latency}</td></tr>"#,
            n + 1,
            esc(if response.text.is_empty() {
                "—"
            } else {
                &response.text
            }),
            secs(response.created_t),
            response.done_t.map_or("…".to_owned(), secs),
        );
    }
    if timeline.turns.is_empty() {
        s.push_str(r#"<tr><td colspan="7">No responses in this recording.</td></tr>"#);
    }
    s.push_str("</tbody></table>");
    s.push_str("<footer>Times are when the events reached the client, from the start of the recording. \
        Speech spans run from <code>input_audio_buffer.speech_started</code> to <code>speech_stopped</code> as they arrived (the server's positions in the input audio are in the tooltips). \
        Latency runs from the end of your turn (<code>speech_stopped</code> arriving, or your typed message being sent) to the response's first delta (audio, transcript or text).</footer>");
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_turns_latencies_and_the_barge_in() {
        let timeline = Timeline::from_entries(&super::super::tests::session());
        let page = page(&timeline, "session.jsonl", Some("gpt-realtime"));
        assert!(page.starts_with("<!doctype html>"));
        for needle in [
            "What&#39;s the weather in Paris?",
            "Sunny, 22 degrees.",
            ">420 ms<",
            ">600 ms<",
            ">260 ms<",
            "Barge-in at 7.90 s",
            "truncated at 300 ms",
            "<title>You typed at 9.00 s: “Bye!”</title>",
            "gpt-realtime",
        ] {
            assert!(page.contains(needle), "{needle:?} missing");
        }
        assert_eq!(page.matches(r#"<tr class="turn">"#).count(), 3);
        // Self-contained: no script, nothing fetched.
        for forbidden in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(forbidden), "{forbidden}");
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc(r#"<b>"&'"#), "&lt;b&gt;&quot;&amp;&#39;");
        assert_eq!(fit("a long sentence here", 8).as_deref(), Some("a long…"));
        assert_eq!(fit("short", 8).as_deref(), Some("short"));
        assert_eq!(fit("3. Goodbye.", 4), None);
    }
}
