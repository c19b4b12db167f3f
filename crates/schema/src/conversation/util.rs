//! Small helpers: text cut at a char boundary, queues bounded at [`MAX_PENDING`].

use std::collections::VecDeque;

use super::MAX_PENDING;

// The largest prefix length of `text` that is at most `max` bytes and a char boundary.
pub(super) fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

pub(super) fn push_bounded<T>(queue: &mut VecDeque<T>, value: T, dropped: &mut u64) {
    if queue.len() >= MAX_PENDING {
        queue.pop_front();
        *dropped += 1;
    }
    queue.push_back(value);
}
