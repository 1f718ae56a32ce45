//! The request log behind `GET /_fake/requests`: bounded by entry count and by bytes, oldest entries dropped
//! first, so hostile or huge requests cannot grow the server's memory without end.

use std::collections::VecDeque;

use serde_json::Value;

use crate::admin_api::LogEntry;

/// Parameters of a refused request are kept only up to this many bytes of JSON; larger ones are replaced by
/// `null` and their size is shown in `paramsOmittedBytes`. A refused request changed nothing, so its full
/// parameters are rarely needed, and they are what an attacker controls.
pub const REFUSED_PARAMS_MAX_BYTES: usize = 4 * 1024;

/// Bytes an entry costs besides its parameters (strings, numbers, queue slot), an estimate.
const ENTRY_OVERHEAD_BYTES: usize = 256;

#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<(LogEntry, usize)>,
    bytes: usize,
    seq: u64,
}

/// The estimated size of an entry: its JSON parameters plus its text fields plus a fixed overhead.
fn entry_bytes(e: &LogEntry, params_bytes: usize) -> usize {
    ENTRY_OVERHEAD_BYTES
        + params_bytes
        + e.time.len()
        + e.action.len()
        + e.secret_id.len()
        + e.region.len()
        + e.request_id.len()
        + e.result.len()
        + e.load_balancer_id.as_ref().map_or(0, String::len)
}

impl RequestLog {
    /// Appends `entry` (its `seq` is assigned here), first dropping the parameters of a large refused request,
    /// then dropping the oldest entries until at most `max_entries` entries and `max_bytes` bytes remain.
    pub fn push(&mut self, mut entry: LogEntry, max_entries: usize, max_bytes: usize) {
        self.seq += 1;
        entry.seq = self.seq;
        let mut params_bytes = serde_json::to_vec(&entry.params).map_or(0, |v| v.len());
        if entry.result != "OK" && params_bytes > REFUSED_PARAMS_MAX_BYTES {
            entry.params = Value::Null;
            entry.params_omitted_bytes = Some(params_bytes);
            params_bytes = 4;
        }
        let size = entry_bytes(&entry, params_bytes);
        self.entries.push_back((entry, size));
        self.bytes += size;
        while self.entries.len() > max_entries.max(1)
            || (self.bytes > max_bytes && self.entries.len() > 1)
        {
            match self.entries.pop_front() {
                Some((_, s)) => self.bytes -= s,
                None => break,
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter().map(|(e, _)| e)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The estimated bytes the kept entries take.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Empties the log; sequence numbers keep counting up.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}
