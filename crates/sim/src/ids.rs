//! OpenAI-shaped ids (`event_…`, `item_…`, `resp_…`), deterministic per session.

/// A splitmix64 sequence: deterministic, so a session's ids repeat run to run.
#[derive(Debug, Clone)]
pub(crate) struct Ids(u64);

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Ids {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5151_5151)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `prefix_` and 21 base-62 characters, like OpenAI's ids.
    pub(crate) fn next(&mut self, prefix: &str) -> String {
        let mut id = String::with_capacity(prefix.len() + 22);
        id.push_str(prefix);
        id.push('_');
        let (mut a, mut b) = (self.next_u64(), self.next_u64());
        for i in 0..21 {
            let source = if i < 10 { &mut a } else { &mut b };
            id.push(ALPHABET[(*source % 62) as usize] as char);
            *source /= 62;
        }
        id
    }

    /// `len` base-62 characters.
    pub(crate) fn token(&mut self, len: usize) -> String {
        let mut token = String::with_capacity(len);
        let mut source = self.next_u64();
        for i in 0..len {
            if i % 10 == 9 {
                source = self.next_u64();
            }
            token.push(ALPHABET[(source % 62) as usize] as char);
            source /= 62;
        }
        token
    }
}
