//! Typed function tools: a [`Tool`] is an async handler of a `Deserialize + JsonSchema`
//! argument type, registered on the [`Config`](crate::Config). `connect` puts the tools'
//! definitions into the session and adds the tool layer, which runs each call the model
//! makes and answers it.
//!
//! The layer, for each function call of a configured tool:
//!
//! - starts its handler once per `call_id`, on the first of the events that describe the
//!   call (`response.function_call_arguments.done`, `response.output_item.done`,
//!   `response.done` all do);
//! - runs it *beside* the session, in a set of futures the layer polls from
//!   [`Layer::poll`](crate::Layer::poll): nothing spawns, the conversation goes on while a
//!   slow tool runs, and dropping the session drops (cancels) every call;
//! - sends exactly one `function_call_output` when the handler finishes — its result, or
//!   `{"error": …}` when the arguments do not parse, the handler fails or it panics (the
//!   session never fails because of a tool);
//! - sends one `response.create` once every call of the response that made them has its
//!   output, that response is done and no other response is running or asked for (the
//!   server refuses a second active response) — or asks a [`Sequencer`] for it, when the
//!   config has one ([`Config::sequencer`](crate::Config::sequencer));
//! - has the model say that a slow tool is at work, when the tool asks for it
//!   ([`Tool::in_progress`]);
//! - cancels the calls of cancellable tools ([`Tool::cancel_on_barge_in`], the default)
//!   when the user starts speaking or a `response.cancel` is sent: their output says they
//!   were cancelled and no `response.create` follows (the user's new turn gets the answer).
//!
//! Calls of functions no [`Tool`] is configured for are left to the application (their
//! events pass through unchanged, as every event does). Like every layer's work, handlers
//! make progress while the event stream is polled: keep polling it while tools run.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{AbortHandle, Abortable, BoxFuture};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use reelthyme_schema::{
    ClientEvent, FunctionTool, Item, ItemStatus, McpItem, ResponseParams, ServerEvent,
    state::Conversation,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::layer::{Layer, LayerContext};
use crate::sequencer::Sequencer;

/// The prefix of the `event_id` of every follow-up `response.create` the tool layer sends
/// itself (then the call id), when no [`Sequencer`] is configured
/// ([`Config::sequencer`](crate::Config::sequencer)): what tells them from the
/// application's in a recording.
pub const FOLLOW_UP_EVENT_ID_PREFIX: &str = "reelthyme_tool_";

/// A tool handler's failure: any error (`?` converts it), or a message
/// ([`ToolError::msg`]). It goes back to the model as the call's output, `{"error": …}`.
/// Like `anyhow::Error`, it is not a [`std::error::Error`] itself: that is what lets `?`
/// convert every error into it.
pub struct ToolError(Box<dyn std::error::Error + Send + Sync>);

impl ToolError {
    /// A failure with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self(message.to_string().into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ToolError {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Debug for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What a handler returns, as the text the model reads: a `String` or `&str` as it is, a
/// [`serde_json::Value`] or a [`Json`] as JSON.
pub trait ToolOutput {
    /// The output text.
    fn into_output(self) -> String;
}

impl ToolOutput for String {
    fn into_output(self) -> String {
        self
    }
}

impl ToolOutput for &str {
    fn into_output(self) -> String {
        self.to_owned()
    }
}

impl ToolOutput for Value {
    fn into_output(self) -> String {
        self.to_string()
    }
}

/// A serialisable result, sent to the model as JSON.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> ToolOutput for Json<T> {
    fn into_output(self) -> String {
        serde_json::to_string(&self.0)
            .unwrap_or_else(|e| error_output(&format!("the result did not serialise: {e}")))
    }
}

type Handler = dyn Fn(String) -> BoxFuture<'static, Result<String, ToolError>> + Send + Sync;

/// A function tool: a name, a description, the JSON Schema of its arguments and an async
/// handler. Cheap to clone.
///
/// ```
/// use reelthyme::{Config, Endpoint, Tool};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// /// The current weather in a city.
/// #[derive(Deserialize, JsonSchema)]
/// struct GetWeather {
///     /// The city's name.
///     city: String,
/// }
///
/// let tool = Tool::new(|GetWeather { city }| async move { Ok(format!("{city}: 18 °C, clear")) });
/// assert_eq!(tool.tool_name(), "get_weather");
/// let config = Config::new(Endpoint::openai("gpt-realtime")).tool(tool);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Tool {
    name: String,
    description: Option<String>,
    parameters: Value,
    handler: Arc<Handler>,
    cancel_on_barge_in: bool,
    in_progress: Option<String>,
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("cancel_on_barge_in", &self.cancel_on_barge_in)
            .field("in_progress", &self.in_progress)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool whose arguments are `A`: its name is `A`'s type name in snake case
    /// (`GetWeather` → `get_weather`), its description `A`'s doc comment, its parameters
    /// `A`'s JSON Schema (closed with `additionalProperties: false`, definitions inlined).
    /// Change them with [`Tool::name`] and [`Tool::description`].
    pub fn new<A, F, Fut, O>(handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
        O: ToolOutput,
    {
        let (description, parameters) = parameters_of::<A>();
        let handler = Arc::new(handler);
        Self {
            name: snake_case(&A::schema_name()),
            description,
            parameters,
            handler: Arc::new(move |arguments: String| {
                let handler = handler.clone();
                async move {
                    let arguments: A = serde_json::from_str(&arguments).map_err(|e| {
                        ToolError::msg(format!(
                            "the arguments do not match the tool's parameters: {e}"
                        ))
                    })?;
                    handler(arguments).await.map(ToolOutput::into_output)
                }
                .boxed()
            }),
            cancel_on_barge_in: true,
            in_progress: None,
        }
    }

    /// Names the tool (default: the argument type's name in snake case).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Says when and how the model should call it (default: the argument type's doc
    /// comment).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Whether a call still running is cancelled when the user starts speaking or a
    /// `response.cancel` is sent (default `true`). Make it `false` for calls that must
    /// finish (a booking); their result is then sent whenever it comes.
    pub fn cancel_on_barge_in(mut self, cancel: bool) -> Self {
        self.cancel_on_barge_in = cancel;
        self
    }

    /// Has the model tell the user that the tool is at work when a call is still running
    /// once the response that made it is done (default: none; the model says nothing
    /// until the result is in): `instructions` for an out-of-band response
    /// (`conversation: "none"`, so it is not added to the conversation), e.g. "Tell the
    /// user in a few words that you are booking the table." Sent once per call.
    pub fn in_progress(mut self, instructions: impl Into<String>) -> Self {
        self.in_progress = Some(instructions.into());
        self
    }

    /// The tool's name.
    pub fn tool_name(&self) -> &str {
        &self.name
    }

    /// The definition the session gets (`type: "function"`, name, description,
    /// parameters).
    pub fn definition(&self) -> reelthyme_schema::Tool {
        reelthyme_schema::Tool::Function(FunctionTool {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: Some(self.parameters.clone()),
            extra: Default::default(),
        })
    }
}

/// The `conversation.item.create` that answers an MCP approval request (a
/// `mcp_approval_request` item the server added: its `id`), approving it or not.
pub fn mcp_approval(approval_request_id: impl Into<String>, approve: bool) -> ClientEvent {
    ClientEvent::item_create(Item::McpApprovalResponse(McpItem {
        approval_request_id: Some(Some(approval_request_id.into())),
        approve: Some(approve),
        ..McpItem::default()
    }))
}

/// `GetWeather` → `get_weather`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && previous_lower {
                out.push('_');
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            out.extend(c.to_lowercase());
        } else {
            // Generic parameters and paths (`Args<T>`) are not valid in a tool name.
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The description (the type's doc comment) and the parameters schema, made acceptable
/// to the API: no `$schema`, no title, definitions inlined, objects closed.
fn parameters_of<A: JsonSchema>() -> (Option<String>, Value) {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<A>().to_value();
    let mut description = None;
    if let Some(root) = schema.as_object_mut() {
        root.remove("$schema");
        root.remove("title");
        description = root
            .remove("description")
            .and_then(|d| d.as_str().map(str::to_owned));
        // A unit or empty struct has no properties; the API wants an object schema.
        if !root.contains_key("type") && !root.contains_key("properties") {
            root.insert("type".into(), json!("object"));
            root.insert("properties".into(), json!({}));
        }
    }
    close_objects(&mut schema);
    (description, schema)
}

/// `additionalProperties: false` on every object schema that lists properties and says
/// nothing about others: the model should not invent arguments.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for value in map.values_mut() {
                close_objects(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn error_output(message: &str) -> String {
    json!({ "error": message }).to_string()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> Cow<'_, str> {
    if let Some(text) = payload.downcast_ref::<&str>() {
        Cow::Borrowed(text)
    } else if let Some(text) = payload.downcast_ref::<String>() {
        Cow::Borrowed(text)
    } else {
        Cow::Borrowed("(no message)")
    }
}

/// Call ids remembered for deduplication (the oldest forgotten first).
const MAX_SEEN_CALLS: usize = 1024;

/// How a call ended.
enum Outcome {
    Done(String),
    Cancelled,
}

/// A call whose handler runs.
struct Running {
    response_id: String,
    cancellable: bool,
    abort: AbortHandle,
    /// What the model says while it runs, until said.
    in_progress: Option<String>,
}

/// The calls of one response, until its follow-up is asked for.
#[derive(Default)]
struct Round {
    outstanding: usize,
    answered: usize,
    response_done: bool,
    call_ids: Vec<String>,
}

/// Runs the configured tools' calls (see the module documentation). Added by
/// [`connect`](crate::connect) when the config has tools.
pub(crate) struct ToolLayer {
    tools: HashMap<String, Tool>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    running: FuturesUnordered<BoxFuture<'static, (String, Outcome)>>,
    calls: HashMap<String, Running>,
    rounds: HashMap<String, Round>,
    sequencer: Option<Sequencer>,
}

impl fmt::Debug for ToolLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolLayer")
            .field("tools", &self.tools.len())
            .field("running", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl ToolLayer {
    pub(crate) fn new(tools: &[Tool], sequencer: Option<Sequencer>) -> Self {
        Self {
            tools: tools.iter().map(|t| (t.name.clone(), t.clone())).collect(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            running: FuturesUnordered::new(),
            calls: HashMap::new(),
            rounds: HashMap::new(),
            sequencer,
        }
    }

    /// Starts a call, unless it was started before or names no configured tool.
    fn start(&mut self, call_id: &str, name: &str, arguments: &str, response_id: &str) {
        let Some(tool) = self.tools.get(name) else {
            return;
        };
        if !self.seen.insert(call_id.to_owned()) {
            return;
        }
        self.seen_order.push_back(call_id.to_owned());
        if self.seen_order.len() > MAX_SEEN_CALLS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        tracing::debug!(tool = name, call_id, "tool call started");
        let (abort, registration) = AbortHandle::new_pair();
        let work = AssertUnwindSafe((tool.handler)(arguments.to_owned())).catch_unwind();
        let call = call_id.to_owned();
        let name = name.to_owned();
        self.running.push(
            Abortable::new(work, registration)
                .map(move |ended| {
                    let outcome = match ended {
                        Err(_aborted) => Outcome::Cancelled,
                        Ok(Ok(Ok(output))) => Outcome::Done(output),
                        Ok(Ok(Err(error))) => {
                            tracing::warn!(tool = %name, call_id = %call, %error, "tool failed");
                            Outcome::Done(error_output(&error.to_string()))
                        }
                        Ok(Err(panic)) => {
                            let message = panic_message(panic.as_ref());
                            tracing::warn!(tool = %name, call_id = %call, %message, "tool panicked");
                            Outcome::Done(error_output(&format!("the tool panicked: {message}")))
                        }
                    };
                    (call, outcome)
                })
                .boxed(),
        );
        self.calls.insert(
            call_id.to_owned(),
            Running {
                response_id: response_id.to_owned(),
                cancellable: tool.cancel_on_barge_in,
                abort,
                in_progress: tool.in_progress.clone(),
            },
        );
        let round = self.rounds.entry(response_id.to_owned()).or_default();
        round.outstanding += 1;
        round.call_ids.push(call_id.to_owned());
    }

    /// Cancels the running calls of cancellable tools.
    fn cancel(&mut self, why: &str) {
        for (call_id, call) in &self.calls {
            if call.cancellable {
                tracing::debug!(call_id, why, "tool call cancelled");
                call.abort.abort();
            }
        }
    }

    /// Asks for the in-progress announcements of the calls of `response_id` still running.
    fn announce(&mut self, response_id: &str, cx: &mut LayerContext<'_>) {
        for (call_id, call) in &mut self.calls {
            if call.response_id != response_id {
                continue;
            }
            let Some(instructions) = call.in_progress.take() else {
                continue;
            };
            let params = ResponseParams {
                instructions: Some(instructions),
                conversation: Some("none".into()),
                input: Some(Vec::new()),
                ..ResponseParams::default()
            };
            match &self.sequencer {
                // Out-of-band: the sequencer sends it at once.
                Some(sequencer) => drop(sequencer.request(params)),
                None => cx.send(
                    ClientEvent::response_create_with(params)
                        .with_event_id(format!("{FOLLOW_UP_EVENT_ID_PREFIX}progress_{call_id}")),
                ),
            }
        }
    }

    /// Sends the follow-up `response.create` of every round that is complete, when no
    /// response is running or asked for.
    fn follow_up(&mut self, cx: &mut LayerContext<'_>) {
        let ready: Vec<String> = self
            .rounds
            .iter()
            .filter(|(_, round)| round.outstanding == 0 && round.response_done)
            .map(|(id, _)| id.clone())
            .collect();
        for response_id in ready {
            // The sequencer waits for the server itself; without one, this layer does.
            if self.sequencer.is_none() && busy(cx.conversation()) {
                return;
            }
            let Some(round) = self.rounds.remove(&response_id) else {
                continue;
            };
            // Every call cancelled: the user's new turn gets the answer instead.
            if round.answered == 0 {
                continue;
            }
            if let Some(sequencer) = &self.sequencer {
                // Its ticket is not needed: dropping it leaves the request queued.
                drop(sequencer.request_default());
                continue;
            }
            let id = format!(
                "{FOLLOW_UP_EVENT_ID_PREFIX}{}",
                round.call_ids.first().map_or("", String::as_str)
            );
            cx.send(ClientEvent::response_create().with_event_id(id));
        }
    }
}

/// Whether a response is running, or asked for and not yet created.
fn busy(conversation: &Conversation) -> bool {
    conversation.active_response().is_some() || conversation.pending_responses().len() > 0
}

/// The tool name of a call the server did not name (beta servers leave it out of
/// `arguments.done`), from the conversation.
fn name_of(conversation: &Conversation, call_id: &str) -> Option<String> {
    conversation
        .function_call(call_id)?
        .function_call()?
        .name()
        .map(str::to_owned)
}

impl Layer for ToolLayer {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        match &event {
            ServerEvent::ResponseFunctionCallArgumentsDone(call) => {
                let name = call
                    .name
                    .clone()
                    .or_else(|| name_of(cx.conversation(), &call.call_id));
                if let Some(name) = name {
                    self.start(&call.call_id, &name, &call.arguments, &call.response_id);
                }
            }
            ServerEvent::ResponseOutputItemDone(done) => {
                if let Item::FunctionCall(call) = &done.item
                    && let Some(call_id) = &call.call_id
                    && !matches!(call.status, Some(ItemStatus::Incomplete))
                {
                    self.start(call_id, &call.name, &call.arguments, &done.response_id);
                }
            }
            ServerEvent::ResponseDone(done) => {
                let response_id = done.response.id.clone().unwrap_or_default();
                for item in done.response.output.iter().flatten() {
                    if let Item::FunctionCall(call) = item
                        && let Some(call_id) = &call.call_id
                        && !matches!(call.status, Some(ItemStatus::Incomplete))
                    {
                        self.start(call_id, &call.name, &call.arguments, &response_id);
                    }
                }
                if let Some(round) = self.rounds.get_mut(&response_id) {
                    round.response_done = true;
                }
                self.announce(&response_id, cx);
                self.follow_up(cx);
            }
            ServerEvent::InputAudioBufferSpeechStarted(_) => self.cancel("the user spoke"),
            _ => {}
        }
        Some(event)
    }

    fn on_sent(&mut self, event: &ClientEvent, _cx: &mut LayerContext<'_>) {
        if let ClientEvent::ResponseCancel(_) = event {
            self.cancel("response.cancel was sent");
        }
    }

    fn poll(&mut self, task: &mut Context<'_>, cx: &mut LayerContext<'_>) {
        let mut finished = false;
        while let Poll::Ready(Some((call_id, outcome))) = self.running.poll_next_unpin(task) {
            finished = true;
            let Some(call) = self.calls.remove(&call_id) else {
                continue;
            };
            let output = match outcome {
                Outcome::Done(output) => {
                    if let Some(round) = self.rounds.get_mut(&call.response_id) {
                        round.answered += 1;
                    }
                    output
                }
                Outcome::Cancelled => {
                    error_output("cancelled: the user interrupted before the tool finished")
                }
            };
            if let Some(round) = self.rounds.get_mut(&call.response_id) {
                round.outstanding = round.outstanding.saturating_sub(1);
            }
            cx.send(ClientEvent::function_call_output(&call_id, output));
        }
        // A round may also complete when another response ends; `on_event` checks then.
        if finished || !self.rounds.is_empty() {
            self.follow_up(cx);
        }
    }

    fn on_connected(&mut self, _cx: &mut LayerContext<'_>) {
        // A new server session knows nothing of the old one's calls: drop them unanswered.
        self.running = FuturesUnordered::new();
        self.calls.clear();
        self.rounds.clear();
    }
}

/// Adds the tool layer when the config has tools.
pub(crate) fn attach(
    events: crate::receiver::SessionEvents,
    config: &crate::Config,
) -> crate::receiver::SessionEvents {
    if config.tools.is_empty() {
        events
    } else {
        events.with_layer(ToolLayer::new(&config.tools, config.sequencer.clone()))
    }
}

/// MCP approval requests reaching the application as typed values it answers: the server
/// asks before it runs a tool of an MCP server configured with `require_approval` (an
/// `mcp_approval_request` item), and waits for an `mcp_approval_response` item.
///
/// [`McpApprovals::new`] gives the handle and its layer (add it with
/// [`Session::with_layer`](crate::Session::with_layer)). Each request is delivered once, on
/// the first of the events that carry it (`response.output_item.added`/`.done`,
/// `conversation.item.added`/`.done`, `response.done`); answer it with the event
/// [`McpApprovalRequest::approve`] or [`McpApprovalRequest::reject`] gives, sent on any
/// sender. At most [`MAX_PENDING_APPROVALS`] wait unread; more are dropped with a warning
/// and counted ([`McpApprovals::dropped`]), so a server cannot grow the queue.
///
/// ```no_run
/// # async fn run(session: reelthyme::Session) -> reelthyme::Result<()> {
/// use futures_util::StreamExt;
///
/// let (mut approvals, layer) = reelthyme::McpApprovals::new();
/// let (mut tx, mut events) = session.with_layer(layer).split();
/// loop {
///     tokio::select! {
///         Some(request) = approvals.recv() => {
///             let answer = if request.name == "read_file" {
///                 request.approve()
///             } else {
///                 request.reject("only reading is allowed")
///             };
///             tx.send(answer).await?;
///         }
///         Some(event) = events.next() => { event?; }
///         else => break,
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct McpApprovals {
    requests: tokio::sync::mpsc::Receiver<McpApprovalRequest>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// Approval requests waiting unread at most (see [`McpApprovals`]).
pub const MAX_PENDING_APPROVALS: usize = 64;

/// Request ids remembered to deliver each request once.
const MAX_SEEN_APPROVALS: usize = 1024;

impl McpApprovals {
    /// The handle and its layer.
    pub fn new() -> (Self, McpApprovalLayer) {
        let (tx, requests) = tokio::sync::mpsc::channel(MAX_PENDING_APPROVALS);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        (
            Self {
                requests,
                dropped: dropped.clone(),
            },
            McpApprovalLayer {
                requests: tx,
                seen: HashSet::new(),
                seen_order: VecDeque::new(),
                dropped,
            },
        )
    }

    /// The next request; `None` once the layer is gone (the session was dropped). Requests
    /// arrive while the event stream is polled.
    pub async fn recv(&mut self) -> Option<McpApprovalRequest> {
        self.requests.recv().await
    }

    /// The next request already delivered, if any.
    pub fn try_recv(&mut self) -> Option<McpApprovalRequest> {
        self.requests.try_recv().ok()
    }

    /// Requests dropped because [`MAX_PENDING_APPROVALS`] were waiting unread.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// An MCP server's tool call waiting for the application's approval (an
/// `mcp_approval_request` item).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct McpApprovalRequest {
    /// The request's id (the item's), which the answer names.
    pub id: String,
    /// The label of the MCP server that would run the tool.
    pub server_label: String,
    /// The tool to run.
    pub name: String,
    /// Its arguments, as JSON text.
    pub arguments: String,
    /// The response that asked, when known.
    pub response_id: Option<String>,
}

impl McpApprovalRequest {
    /// The request an item is, if it is one (it names its id).
    pub fn from_item(item: &Item) -> Option<Self> {
        let Item::McpApprovalRequest(request) = item else {
            return None;
        };
        Some(Self {
            id: request.id.clone()?,
            server_label: request.server_label.clone().unwrap_or_default(),
            name: request.name.clone().unwrap_or_default(),
            arguments: request.arguments.clone().unwrap_or_default(),
            response_id: None,
        })
    }

    /// The arguments, parsed.
    ///
    /// # Errors
    /// When they are not JSON of that shape.
    pub fn arguments<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.arguments)
    }

    /// The `conversation.item.create` that approves it.
    pub fn approve(&self) -> ClientEvent {
        mcp_approval(self.id.clone(), true)
    }

    /// The `conversation.item.create` that refuses it, saying why.
    pub fn reject(&self, reason: impl Into<String>) -> ClientEvent {
        ClientEvent::item_create(Item::McpApprovalResponse(McpItem {
            approval_request_id: Some(Some(self.id.clone())),
            approve: Some(false),
            reason: Some(Some(reason.into())),
            ..McpItem::default()
        }))
    }
}

/// The layer of [`McpApprovals`]: finds the requests in the server's events.
#[derive(Debug)]
pub struct McpApprovalLayer {
    requests: tokio::sync::mpsc::Sender<McpApprovalRequest>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl McpApprovalLayer {
    fn offer(&mut self, item: &Item, response_id: Option<&str>) {
        let Some(mut request) = McpApprovalRequest::from_item(item) else {
            return;
        };
        if !self.seen.insert(request.id.clone()) {
            return;
        }
        self.seen_order.push_back(request.id.clone());
        if self.seen_order.len() > MAX_SEEN_APPROVALS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        request.response_id = response_id.map(str::to_owned);
        tracing::debug!(id = %request.id, server = %request.server_label, tool = %request.name,
            "MCP approval requested");
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(request)) =
            self.requests.try_send(request)
        {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(id = %request.id, "MCP approval request dropped: too many unread");
        }
    }
}

impl Layer for McpApprovalLayer {
    fn on_event(&mut self, event: ServerEvent, _cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        match &event {
            ServerEvent::ResponseOutputItemAdded(e) | ServerEvent::ResponseOutputItemDone(e) => {
                self.offer(&e.item, Some(&e.response_id));
            }
            ServerEvent::ConversationItemAdded(e)
            | ServerEvent::ConversationItemCreated(e)
            | ServerEvent::ConversationItemDone(e) => self.offer(&e.item, None),
            ServerEvent::ResponseDone(done) => {
                for item in done.response.output.iter().flatten() {
                    self.offer(item, done.response.id.as_deref());
                }
            }
            _ => {}
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The current weather in a city.
    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct GetWeather {
        /// The city.
        city: String,
        unit: Option<Unit>,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Unit {
        celsius: bool,
    }

    #[test]
    fn names_are_snake_case() {
        assert_eq!(snake_case("GetWeather"), "get_weather");
        assert_eq!(snake_case("Lookup2Things"), "lookup2_things");
        assert_eq!(snake_case("Args<String>"), "args_string");
        assert_eq!(snake_case("HTTPGet"), "httpget");
    }

    #[test]
    fn the_schema_is_acceptable_to_the_api() {
        let (description, schema) = parameters_of::<GetWeather>();
        assert_eq!(
            description.as_deref(),
            Some("The current weather in a city.")
        );
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["city"]));
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
        assert!(schema.get("$defs").is_none(), "{schema}");
        let text = schema.to_string();
        assert!(!text.contains("$ref"), "{text}");
        // The nested object is closed too.
        assert!(
            text.matches("\"additionalProperties\":false").count() >= 2,
            "{text}"
        );
    }

    #[test]
    fn an_mcp_approval_is_a_valid_item_create() {
        let event = mcp_approval("mcpr_123", false);
        crate::validate(event.clone()).unwrap();
        let value: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(value["item"]["type"], "mcp_approval_response");
        assert_eq!(value["item"]["approval_request_id"], "mcpr_123");
        assert_eq!(value["item"]["approve"], false);
    }

    #[test]
    fn a_unit_argument_type_is_an_empty_object() {
        #[derive(serde::Deserialize, JsonSchema)]
        struct Ping {}
        let (_, schema) = parameters_of::<Ping>();
        assert_eq!(schema["type"], "object");
    }
}
