//! The kernel's BLAKE3 (`docs/FORMAT.md` §5): the `blake3` crate with `std` (its SIMD code
//! hashes a large state fast), and otherwise a compact implementation written for flash size
//! and stack depth on microcontrollers: one round loop driven by tables instead of seven
//! unrolled rounds, no multi-chunk parallel path, and a chaining-value stack sized for the
//! target's address space. Both give the same 32-byte hash for the same bytes; the tests below
//! compare them on inputs across chunk and tree boundaries, and the firmware replays the
//! golden scripts with the compact one.

/// An incremental BLAKE3 hasher (32-byte output, unkeyed).
#[cfg(feature = "std")]
pub(crate) struct Hasher(blake3::Hasher);

#[cfg(feature = "std")]
impl Hasher {
    pub(crate) fn new() -> Hasher {
        Hasher(blake3::Hasher::new())
    }
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub(crate) fn finalize(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

#[cfg(not(feature = "std"))]
pub(crate) use compact::Hasher;

impl crate::codec::Sink for Hasher {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

#[cfg_attr(all(feature = "std", not(test)), allow(dead_code))]
pub(crate) mod compact {
    const IV: [u32; 8] = [
        0x6A09_E667,
        0xBB67_AE85,
        0x3C6E_F372,
        0xA54F_F53A,
        0x510E_527F,
        0x9B05_688C,
        0x1F83_D9AB,
        0x5BE0_CD19,
    ];
    const CHUNK_START: u32 = 1;
    const CHUNK_END: u32 = 2;
    const PARENT: u32 = 4;
    const ROOT: u32 = 8;
    /// Blocks in a 1024-byte chunk.
    const BLOCKS: u8 = 16;

    /// Which message word each round reads at each position: round 0 reads them in order,
    /// each later round applies BLAKE3's message permutation
    /// `[2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]` once more to the round before
    /// (a test derives it again).
    pub(super) const SCHEDULE: [[u8; 16]; 7] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8],
        [3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1],
        [10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6],
        [12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4],
        [9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7],
        [11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13],
    ];

    /// The mixing function G on state words a, b, c, d with message words x, y.
    #[inline(always)]
    #[allow(clippy::indexing_slicing, clippy::too_many_arguments)]
    fn g(v: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) {
        v[a] = v[a].wrapping_add(v[b]).wrapping_add(x);
        v[d] = (v[d] ^ v[a]).rotate_right(16);
        v[c] = v[c].wrapping_add(v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(12);
        v[a] = v[a].wrapping_add(v[b]).wrapping_add(y);
        v[d] = (v[d] ^ v[a]).rotate_right(8);
        v[c] = v[c].wrapping_add(v[d]);
        v[b] = (v[b] ^ v[c]).rotate_right(7);
    }

    /// The compression function, truncated to the 8 words every use here needs (chaining
    /// values and a 32-byte root output). One round's code, run seven times with the message
    /// words the schedule names: small, and the state indices are constants.
    // The state indices are constants below 16 and the message indices table entries masked
    // below 16: no bounds checks, nothing to panic.
    #[allow(clippy::indexing_slicing)]
    fn compress(cv: &[u32; 8], m: &[u32; 16], counter: u64, len: u32, flags: u32) -> [u32; 8] {
        let mut v = [0u32; 16];
        v[..8].copy_from_slice(cv);
        v[8..12].copy_from_slice(&IV[..4]);
        v[12] = counter as u32;
        v[13] = (counter >> 32) as u32;
        v[14] = len;
        v[15] = flags;
        for s in &SCHEDULE {
            let w = |i: usize| m[usize::from(s[i & 15]) & 15];
            // Columns, then diagonals.
            g(&mut v, 0, 4, 8, 12, w(0), w(1));
            g(&mut v, 1, 5, 9, 13, w(2), w(3));
            g(&mut v, 2, 6, 10, 14, w(4), w(5));
            g(&mut v, 3, 7, 11, 15, w(6), w(7));
            g(&mut v, 0, 5, 10, 15, w(8), w(9));
            g(&mut v, 1, 6, 11, 12, w(10), w(11));
            g(&mut v, 2, 7, 8, 13, w(12), w(13));
            g(&mut v, 3, 4, 9, 14, w(14), w(15));
        }
        let mut out = [0u32; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = v[i & 7] ^ v[(i & 7) + 8];
        }
        out
    }

    fn words(block: &[u8; 64]) -> [u32; 16] {
        let mut m = [0u32; 16];
        for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([
                b.first().copied().unwrap_or(0),
                b.get(1).copied().unwrap_or(0),
                b.get(2).copied().unwrap_or(0),
                b.get(3).copied().unwrap_or(0),
            ]);
        }
        m
    }

    fn parent(left: &[u32; 8], right: &[u32; 8], flags: u32) -> [u32; 8] {
        let mut m = [0u32; 16];
        m[..8].copy_from_slice(left);
        m[8..].copy_from_slice(right);
        compress(&IV, &m, 0, 64, PARENT | flags)
    }

    /// Chaining values of completed subtrees kept while hashing: one per set bit of the count
    /// of completed chunks. 23 entries hold any input below 2^24 chunks (16 GiB); what a
    /// kernel on a 32-bit target hashes (its state encoding, at most twice its memory) stays
    /// below 8 GiB. 64-bit targets get the full 2^64-byte range. Past the stack's room the
    /// hash would be wrong, not a panic; no input the kernel hashes gets there.
    const STACK: usize = if usize::BITS <= 32 { 23 } else { 54 };

    /// An incremental BLAKE3 hasher (32-byte output, unkeyed).
    #[derive(bytemuck::Zeroable)]
    pub(crate) struct Hasher {
        stack: [[u32; 8]; STACK],
        depth: usize,
        /// The chaining value inside the current chunk.
        cv: [u32; 8],
        /// The current chunk's index.
        chunk: u64,
        /// Input not yet compressed: a block is compressed only once more input follows,
        /// since the last block of the input is compressed differently.
        block: [u8; 64],
        len: usize,
        /// Blocks of the current chunk already compressed.
        blocks: u8,
    }

    impl Hasher {
        // Zeroed in place, in the caller's frame: building the value and then moving it
        // would put a second copy of its chaining-value stack on the stack.
        #[inline(always)]
        pub(crate) fn new() -> Hasher {
            let mut h: Hasher = bytemuck::Zeroable::zeroed();
            h.cv = IV;
            h
        }

        fn start_flag(&self) -> u32 {
            if self.blocks == 0 {
                CHUNK_START
            } else {
                0
            }
        }

        pub(crate) fn update(&mut self, mut input: &[u8]) {
            while !input.is_empty() {
                if self.len == 64 {
                    self.compress_full_block();
                }
                let take = (64 - self.len).min(input.len());
                let (head, rest) = input.split_at(take);
                if let Some(dst) = self.block.get_mut(self.len..self.len + take) {
                    dst.copy_from_slice(head);
                }
                self.len += take;
                input = rest;
            }
        }

        /// Compresses the full block buffered, input following it: within the chunk, or as
        /// the chunk's last block, whose chaining value then joins the tree.
        fn compress_full_block(&mut self) {
            let m = words(&self.block);
            let flags = self.start_flag();
            if self.blocks + 1 < BLOCKS {
                self.cv = compress(&self.cv, &m, self.chunk, 64, flags);
                self.blocks += 1;
            } else {
                let mut cv = compress(&self.cv, &m, self.chunk, 64, flags | CHUNK_END);
                self.chunk += 1;
                // Each trailing zero bit of the chunk count completes a subtree.
                let mut total = self.chunk;
                while total & 1 == 0 && self.depth > 0 {
                    self.depth -= 1;
                    if let Some(left) = self.stack.get(self.depth) {
                        cv = parent(left, &cv, 0);
                    }
                    total >>= 1;
                }
                if let Some(slot) = self.stack.get_mut(self.depth) {
                    *slot = cv;
                    self.depth += 1;
                }
                self.cv = IV;
                self.blocks = 0;
            }
            self.block = [0; 64];
            self.len = 0;
        }

        pub(crate) fn finalize(&self) -> [u8; 32] {
            let m = words(&self.block);
            let flags = self.start_flag() | CHUNK_END;
            let len = self.len as u32;
            let out = if self.depth == 0 {
                compress(&self.cv, &m, self.chunk, len, flags | ROOT)
            } else {
                let mut cv = compress(&self.cv, &m, self.chunk, len, flags);
                let mut i = self.depth;
                while i > 1 {
                    i -= 1;
                    if let Some(left) = self.stack.get(i) {
                        cv = parent(left, &cv, 0);
                    }
                }
                parent(self.stack.first().unwrap_or(&IV), &cv, ROOT)
            };
            let mut bytes = [0u8; 32];
            for (b, w) in bytes.chunks_exact_mut(4).zip(out) {
                b.copy_from_slice(&w.to_le_bytes());
            }
            bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::compact;

    fn input(len: usize) -> alloc::vec::Vec<u8> {
        // The official test vectors' input: bytes 0, 1, ..., 250, 0, 1, ...
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn compact_hash(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = compact::Hasher::new();
        for p in parts {
            h.update(p);
        }
        h.finalize()
    }

    /// The official test vectors (BLAKE3's `test_vectors.json`, unkeyed hash, first 32
    /// bytes) at lengths around block, chunk and tree boundaries.
    #[test]
    fn compact_blake3_gives_the_official_test_vectors() {
        for (len, want) in [
            (
                0usize,
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            ),
            (
                1,
                "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
            ),
            (
                1024,
                "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
            ),
            (
                1025,
                "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
            ),
            (
                31744,
                "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
            ),
        ] {
            let got = compact_hash(&[&input(len)]);
            let hex: alloc::string::String =
                got.iter().map(|b| alloc::format!("{b:02x}")).collect();
            assert_eq!(hex, want, "length {len}");
        }
    }

    /// The compact hasher equals the `blake3` crate at every length up to 3 chunks and at
    /// lengths that build trees of several levels, fed whole and in uneven pieces.
    #[test]
    // Tens of megabytes hashed twice over: hours under Miri. The official vectors above run
    // under it (every code path of the compact hasher, with bounds and overflow checks).
    #[cfg_attr(miri, ignore)]
    fn compact_blake3_equals_the_crate() {
        let permutation = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
        let mut round: [u8; 16] = core::array::from_fn(|i| i as u8);
        for want in compact::SCHEDULE {
            assert_eq!(round, want);
            round = core::array::from_fn(|i| round[permutation[i]]);
        }

        let big = input(70_000);
        let lengths = (0..=3 * 1024 + 65)
            .chain([4095, 4096, 4097, 8192, 8193, 16_385, 33_000, 65_536, 70_000]);
        for len in lengths {
            let data = &big[..len];
            let want = *blake3::hash(data).as_bytes();
            assert_eq!(compact_hash(&[data]), want, "length {len}");
            let (a, rest) = data.split_at(len / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            assert_eq!(
                compact_hash(&[a, &[], b, c]),
                want,
                "length {len} in pieces"
            );
        }
    }
}
