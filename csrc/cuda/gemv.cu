// Tuning notes (H100 80GB HBM3, 2026-11-26; bench/gpu_gemv.py: CUDA graph over R weight copies, bf16 x, copy
// 2.95 TB/s). 8192x8192 4-bit = 32 MB of codes; floor at 2.95 TB/s ~ 12 us.
//   before (gemv_mma_kernel for all formats): 8192^2 M=1 int4 56.7 / nf4 52.3 / nvfp4 55.5 / mxfp4 52.7 us,
//     M=16 81.6 / 70.3 / 65.8 / 61.4; 4096^2 M=1 15.3 / 14.5 / 15.6 / 14.7, M=16 16.4 / 15.8 / 16.4 / 15.6.
//   ncu (8192^2 int4 M=1): DRAM 17.6%, issue slots 42%, IPC 2.19 at 22% occupancy (128 regs, 2 blocks/SM), 315
//     warp instructions per 512-byte warp load of codes (~10 per weight): issue/latency bound, not memory bound;
//     320 blocks on 264 slots (1.21 waves) on top. SASS: runtime scale-kind branches, per-lookup address math,
//     BSSY/BSYNC around predicated loads.
//   after (gemv_nib4_kernel, this commit): 8192^2 M=1 27.8 / 26.2 / 30.4 / 26.9 us (42-49% of copy), M=16 38.4 /
//     36.9 / 42.1 / 39.1; 4096^2 M=1 12.0 / 11.0 / 13.4 / 12.5, M=16 15.0 / 14.8 / 16.0 / 15.0. Predicted ~2-3x
//     from ~3x fewer instructions; got 2x at 8192^2, 1.2x at 4096^2.
//   ncu after (8192^2 int4 M=1): 191 warp instructions per warp code load (was 315), IPC 2.25, issue 49%, DRAM 34%,
//     occupancy still 23% (128 regs). Still issue/latency bound. Per code pair: SHF + LOP3 + IADD (table base) + LDS
//     + HMUL2 (+ HADD2 with zeros); per HMMA ~4 MOVs rebuilding the A quad (the compiler does not keep the 8 x
//     quads live across the 4 tiles at 128 registers). Next levers, in order: x quads loaded straight into
//     {x, junk, x, junk} registers for M <= 8 (rows g+8 of D are dropped, so a1/a3 may hold anything); a 32 KB-
//     aligned table so the base folds into the LOP3; fewer registers (single-buffered scales) for 3 blocks/SM;
//     for int4 the 0x4300 magic-number decode (2 ops per pair, no LDS).
//   round 2 (H100 80GB HBM3, 2026-11-26, same bench): levers (1) and (2). (1) M <= 8: the 16-byte x load is the A
//     quad itself, {x0, x1, x2, x3}; B = (byte 0, byte 2) of the weight word gives rows g, B = (byte 1, byte 3) into
//     a second accumulator gives rows g + 8 (both correct partial sums of row g, added at the end): no MOVs, no
//     zero registers. (2) table in dynamic shared memory at a 32 KB-aligned address, so base | lane << 2 folds into
//     the LOP3 (ld.shared with a 32-bit address). SASS (sm_90a, bf16 int4 M <= 8 instantiation): 2200 -> 1928
//     instructions, IMAD.MOV 173 -> 40, IMAD.IADD 113 -> 16; predicted ~10% at 8192^2 M=1 if issue bound. The
//     int4 (zeros) M <= 8 instantiation now spills 24 bytes (~10 STL/LDL per 2 steps, L1).
//     Measured: 8192^2 M=1 int4 26.9 / nf4 24.2 / nvfp4 29.0 / mxfp4 24.6 us (was 27.9 / 27.0 / 31.2 / 27.3:
//     -4 / -10 / -7 / -10%; 46-53% of copy), M=16 39.3 / 37.3 / 40.9 / 38.0 (unchanged: only (2) applies);
//     4096^2 M=1 11.5 / 10.5 / 13.1 / 11.6, M=16 15.5 / 14.7 / 15.6 / 14.6. int4 gained least (its spill).
//   round 2b: the 4 tiles' zero-point bytes packed in one register per stage (was one per tile): predicted the int4
//     spill (24 bytes) goes and int4 catches up with nf4. SASS: no spill, 1928 -> 1896. Measured (same card/day):
//     8192^2 M=1 int4 25.1 us (was 26.9; nf4 24.5 / nvfp4 28.9 / mxfp4 24.9 unchanged within noise), 4096^2 M=1
//     int4 11.1, M=16 8192^2 40.1 / 37.6 / 41.3 / 38.2 (within ~2% of before). tests 233 passed, memcheck 0 errors.
//     Still far from the 80% target: next, (3) single-buffered scales / fewer registers to drop the int4 spill and
//     reach 3 blocks/SM, (4) LUT-free int4 decode (pairs (n_k, n_k+4) from (w >> 4i) & 0x000f000f | 0x43004300,
//     x pairs permuted to match by 4 PRMTs per x load shared by the 4 tiles: ~1.75 instr per pair vs 3 + LDS).
//   round 3 (H100 80GB HBM3, 2026-11-26, bench/gpu_gemv.py): split-K partials reduced inside a thread-block
//     cluster through distributed shared memory (no workspace, no second kernel). Predicted ~2-3 us off 4096^2
//     (ncu: the reduce kernel took 3.3 us). Measured: M = 1 unchanged (4096^2 10.7-12.6 us, 8192^2 uses no split),
//     M = 16 worse (8192^2 37.9 -> 51.9-57.5 us, 4096^2 14.8 -> 21.3-23.3: S = 3 clusters of 3-block-per-SM
//     blocks wait for each other at the final barrier and pin their slots). Reverted; kept as a note.
//   round 3b: the split planner (plan_nib4) charges a fixed cost per block and per split-K pass. Measured (same card,
//     bench/gpu_peers.py, CUDA graph): 14336x4096 M=1 37.7 -> 26.9 us (S 4 -> 1), M=16 59.0 -> 45.6; 28672x8192 M=1
//     84.5 -> 80.7 (S 2 -> 1); 4096^2 M=1 12.3 -> 12.0 (S 2 -> 1); the other shapes kept their S.
//   round 4 (H100 80GB HBM3, 2026-11-26, bench/gpu_gemv.py, CUDA graph; each A/B in one run):
//     ncu source counters, 8192^2 int4 M=1: 21% of stall samples long-scoreboard, 314 of those 504 on a step's first
//     MMA waiting for its x fragment (global, L1 hit rate 49%). (XS) x staged in shared memory for M <= 8: 4096^2 M=1
//     nvfp4 13.2 -> 11.2, mxfp4 11.3 -> 9.8, int4 10.8 -> 10.5, nf4 10.4 -> 10.0 us; 8192^2 unchanged (24-26 us).
//     (W16) 16-warp blocks when the grid has at most one block per SM: 4096^2 M=1 int4 10.5 -> 10.0, nf4 10.0 -> 9.3,
//     nvfp4 11.1 -> 10.7 us; 4096x14336 M=1 int4 25.7 -> 23.3, nf4 24.4 -> 23.1, mxfp4 23.2 -> 22.3 us.
//     Tried and reverted: an integer decode for int4 (bf16 0x4300 | code, one LOP3 per code pair, no table): main
//     loop 1021 -> 900 SASS instructions, no LDS, 8192^2 int4 M=1 unchanged (25.9 us); an L2 prefetch 1-4 rounds
//     ahead of the loads: worse (26.8 -> 31.7-33.1 us). bench/probes/gemv_loads.cu: this kernel's load pattern alone
//     streams the 32 MB in 14.4-14.7 us (2.3 TB/s; row-contiguous runs 13.0, a plain stream 13.4), so the 25 us
//     are not the access pattern: each warp's dependent instruction stream is the bound (ncu: 7.4-7.8 cycles
//     between a warp's instructions at 4 warps a scheduler, 0.5 instructions issued per cycle). Also tried: 2 tiles a
//     warp (16 rows a block) at 80 registers, 3 blocks an SM: 8192^2 M=1 26.1 -> 35.0 (int4), 25.0 -> 31.4 (nf4) us,
//     4096x14336 22-24 -> 24-29 us, 4096^2 within noise: more, smaller blocks lose (per-block table, x shared by
//     fewer tiles). Run-to-run spread of 4096^2 M=1 between fresh machines: ~10% (9.3-10.0 vs 10.4-10.9 us, nf4).
//   round 5 (H100 80GB HBM3, 2026-11-27, bench/gpu_gemv.py, CUDA graph; base and variants built side by side and
//     timed alternately in one run, two reps each): ncu (8192^2 nf4 M=1, base) put 24% of the warp stall samples
//     and 17% of the executed instructions in the prologue (table build: 32 single-word stores per thread after a
//     staging barrier) and ~12 SASS instructions of index math plus a branch around each XS x load. Now: the table
//     is stored as 16-byte runs (8 per thread, bank-conflict free, no staging barrier), and an XS load is one IMAD,
//     one LOP3 and a predicated LDS.128 (main loop 917 -> 815 SASS instructions, nf4 bf16 M <= 8). Measured, base
//     -> now (us): 4096^2 M=1 int4 9.9 -> 9.3, nf4 9.3 -> 8.9, nvfp4 10.7 -> 9.7, mxfp4 9.7 -> 8.9; 8192^2 M=1
//     26.2 -> 25.3, 24.9 -> 23.4, 28.7 -> 26.1, 24.1 -> 22.1; M=16 8192^2 39.8 -> 38.2, 30.3 -> 30.2, 34.8 -> 34.6,
//     31.8 -> 30.4; 4096x14336 M=1 and M=16 1-3% faster; no case slower. Tried and dropped in the same runs: the
//     group index by a shift for power-of-two G with branch-free (select) scale loads (no shorter main loop; nf4 /
//     nvfp4 M=16 6-8% and 4096x14336 M=1 3-8% slower than without it); batching 2-4 x loads per thread in the
//     staging (ptxas spills at the 128-register cap).
//   round 6 (H100 80GB HBM3, 2026-11-27, scripts/gpu_ab.sh, bench/gpu_gemv.py), tried and dropped: the codes through
//     a per-warp cp.async ring in shared memory (3 slots, two steps in flight instead of one in registers; scales two
//     steps ahead in registers). 8192^2 M=1 25.4 / 23.5 / 26.3 / 22.2 -> 24.6 / 23.6 / 26.9 / 22.9 us, 4096^2 M=1
//     9.3 / 8.9 / 9.7 / 8.9 -> 10.3 / 9.7 / 11.0 / 10.0, 4096x14336 M=1 2-10% slower. ncu before it (8192^2 int4 M=1):
//     DRAM 39%, issue 42%, 1.01 eligible warps of 3.7, long-scoreboard 24% of the stall samples (~40% of those in the
//     prologue); with the ring still 21%, then on the scale loads. More bytes in flight did not help.
//   round 7 (H100 80GB HBM3, 2026-11-27, bench/probes/gemv_ab.py: builds timed in turn, two reps, best of each; M = 1
//     and 8, five shapes, four formats; outputs bit-identical). ncu (8192^2 mxfp4 M=1): 19% of stall samples on the
//     first use of a step's codes, 6.6% on the table build's lut loads, 1.2% on the x staging's stores; 0.96 eligible
//     warps of 3.72, issue 40%, DRAM 43%. (V1, kept) x staged by cp.async before the table build, so the x chunks and
//     the lut loads are in flight together: geomean 0.995x the time under do_bench's flush, 0.993x back to back
//     (28672x8192 M=1 nf4 75.6 -> 72.4 us, nvfp4 84.1 -> 80.1; 4096^2 M=1 int4 back to back 9.9 -> 8.6; nothing
//     slower than 2%). (V2, dropped) also the second step's weight loads before the prologue: 1.5% slower geomean,
//     up to 17% (ptxas spilled 4-24 bytes in three instantiations). So the prologue is not what bounds it either.
//     Floor of the method (bench/probes/route_floor.py A, same day): a plain Triton read of the same bytes takes
//     20.5 us at 8192^2 under do_bench's flush (54% of copy; 15.5 back to back) and 53.2 at 28672x8192 (74%), so the
//     M = 1 target of 80% of copy is above what any kernel can show under that method; this GEMV reaches 72-80% of
//     the plain read's rate there (25.5-28.6 us) and 70-77% back to back.
//   round 8 (H100 80GB HBM3, 2026-11-28, bench/probes/read_method.py, kernel times by CUPTI after do_bench's flush):
//     a hand-written CUDA read of the same codes (bench/read_floor.cu) takes 14.7-16.0 us at 8192^2 (77% of copy) and
//     44.7-45.1 at 28672x8192 (89%; the Triton read above is 12-14% slower), while this GEMV takes 24.4 / 22.0 (int4 /
//     mxfp4) and 74.6 / 65.3: 60-68% of a plain read's rate, so round 7's "72-80%" compared eager times that share ~3-4
//     us of do_bench overhead. An L2 evict_first policy on the loads changed nothing (bench/read_floor.cu). ncu (8192^2
//     int4 / nf4 M=1): HMMA pipe 17% / 20% active, ALU 38 / 41%, FMA 30 / 21%, LSU 30 / 34%, issue 43 / 39%, 1.0
//     eligible of 3.7 warps a scheduler, 142 / 118 warp instructions a 512-byte warp load of codes; stalls: long
//     scoreboard 24-26% (11-19% on the first use of a step's codes), fixed latency 14-15%. No pipe is near its limit:
//     the warps' dependent chains with 4 warps a scheduler are the bound (as round 4 found).
//   round 9 (H100 80GB HBM3, 2026-11-28, bench/probes/gemv_abl.cu: kernel us by cudaEvents after a 256 MB flush, M = 1
//     bf16; "read" is bench/read_floor.cu's plain read of the codes, timed the same way). Ablations (wrong results):
//     8192^2 int4 / nf4 / nvfp4 / mxfp4 26.9 / 25.6 / 27.0 / 24.8 (read 17.3); without the scale / zero HMUL2 and
//     HSUB2 22.8 / 20.7 / 25.4 / 20.8; without any decode 21.5 / 20.1 / 23.3 / 20.1; int4 bit decode (no table) with
//     its HSUB2 23.7. So the packed multiply after each table load cost more than the load, and the lookups little.
//     Kept: GS (M = 1), the scales applied to float32 MMA sums per group slot (see gemv_nib4_kernel), then E8M0 scales
//     through a 256-float table. Base -> GS -> + table, same call: 8192^2 26.8 / 25.4 / 26.8 / 24.8 -> 26.1 / 24.8 /
//     25.2 / 24.6 -> 26.1 / 24.8 / 25.2 / 24.2; 28672x8192 76.9 / 70.8 / 79.3 / 67.6 -> 73.5 / 68.2 / 70.3 / 67.6 ->
//     73.3 / 68.1 / 70.3 / 66.9; 14336x4096 27.3 / 24.8 / 26.5 / 24.3 -> 26.1 / 24.0 / 24.4 / 24.0 -> 26.0 / 24.0 /
//     24.4 / 23.6; 4096^2 12.1 / 11.7 / 11.9 / 11.4 -> 11.6 / 11.4 / 11.4 / 11.3 -> 11.6 / 11.4 / 11.4 / 11.5 (two
//     passes each agreed within 0.3 us). The fold (two scale loads, two FADD, two FFMA a tile and step) costs most of
//     what the 16 HMUL2 did; a first version that fetched the scales by shuffles (collective SASS) and zeroed each
//     step's accumulators with moves (now MMAs from RZ) gained nothing.
//   round 10 (H200, 2026-11-28, bench/probes/m1_ab.py: graph us, builds alternated twice in one call; tried, not
//     kept): int4's zero point at M = 1 moved out of the decode: the MMAs took h(lut[c]) and each slot's float32 sum
//     took -z * (its sum of x), from 4 MMAs with B = 1 a step shared by the 4 tiles, the zero points of rows 2t and
//     2t + 1 fetched by two shuffles (64 fewer HSUB2 a step and lane; 8-byte spills in the W16 and non-XS
//     instantiations). 8192^2 22.95-22.98 -> 22.93-23.02 us, 28672x8192 68.6 -> 68.9, 4096x14336 22.2 -> 22.7,
//     14336x4096 24.0 -> 24.3-24.4, 4096^2 (W16, spilling) 9.0 -> 9.9; nf4 in the same runs within 0.2 us. So the
//     HSUB2s are off the critical path, and int4's 3-12% over nf4 at M = 1 (the same runs) comes from elsewhere (not
//     measured: its zero-point loads, or g128 against nf4's 64). tests/test_cuda_gemv.py -k int4 passed on that build.
//   round 11 (H200, 2026-11-28, measured, nothing changed): like-for-like graph timings put torch's tinygemm ahead of
//     this GEMV at M = 1 (4096^2 8.2 us against 9.1-9.5, 14336x4096 20.2 against 21.7-24.0; BENCHMARKS_H200.md). ncu
//     (bench/probes/m1_vs_tinygemm.py, int4 g128), 14336x4096: tinygemm 24.9 us, 64 registers, no shared memory,
//     1792 blocks of 8 warps (one n8 tile a block, its warps splitting K), 7.0 active / 2.9 eligible warps a scheduler,
//     0.75 issued a cycle; this kernel 29.3 us (nf4 26.1), 128 registers, 90 KB of shared memory a block (the 32 KB
//     table and x), 3.5 active / 1.0 eligible, 0.54 issued (nf4 0.49): ~15% fewer instructions, half the warps. At
//     4096^2: 9.5 us against 10.5 / 10.0 (int4 / nf4), 6.7 against 4.1 active warps. The lever is occupancy: fewer
//     registers and no per-block table (bit decodes for the integer and E2M1 codes), which round 4's 80-register,
//     2-tile variant did not reach (it kept the table).
//   round 12 (H200, 2026-11-28, bench/probes/m1_ab.py: graph us, builds or settings alternated twice in one call;
//     tried, nothing kept). (a) That lever, tried at this kernel's structure: the table in static shared memory (no 64
//     KB aligned allocation), each tile's next loads issued right after its decode (one register stage), and V1 = 2
//     tiles a warp at 4 blocks an SM (64 registers; ptxas spilled 4-52 bytes) or V2 = 4 tiles at 3 blocks (80; 4-32
//     bytes). Base -> V1 -> V2, int4 / nf4 / nvfp4 / mxfp4: 8192^2 23.2 / 21.4 / 22.1 / 21.3 -> 30.1 / 26.3 / 26.2 /
//     25.9 -> 29.8 / 25.0 / 25.6 / 26.1; 28672x8192 68.7 / 61.1 / 63.9 / 62.5 -> 91.1 / 79.3 / 76.3 / 76.8 -> 86.0 /
//     70.7 / 72.0 / 73.4; 4096^2 8.9 / 8.7 / 8.9 / 9.3 -> 12.0 / 10.9 / 10.1 / 10.8 -> 12.8 / 11.8 / 12.3 / 12.5; the
//     other shapes the same way.
//     (b) Half the warps instead (60 KB more dynamic shared memory: one 8-warp block an SM): 8192^2 nf4 / int4 21.0 /
//     23.1 -> 25.4 / 28.3 us, 28672x8192 61.1 / 68.6 -> 78.4 / 89.9 (the W16 shapes unchanged). So 8 -> 16 resident
//     warps an SM bought only 1.2-1.3x: warps are not the one limit, and doubling them again would not close the ~2x to
//     a plain read.
//     (c) Partial waves (bench/probes/m1_waves.py, K = 8192, nf4): 1 / 2 / 3 / 3.25 / 3.39 / 3.5 / 3.75 / 4 waves of
//     264 blocks take 21.3 / 37.7 / 54.2 / 60.3 / 61.3 / 62.0 / 67.8 / 69.7 us (int4 23.1 / 41.8 / 59.9 / 67.8 / 68.7 /
//     70.4 / 76.3 / 78.0; K = 4096: 13.6 at 1, 21.9 at 1.7, 23.1 at 2): a partial wave costs about its share, so
//     splitting the last wave's blocks would gain <= 1-2 us.
//     (d) ncu stall reasons, cycles an issued instruction, 14336x4096 int4: this kernel 6.6 (wait 1.24, long scoreboard
//     1.22, selected 1.0, not selected 0.90, math pipe throttle 0.70, short scoreboard 0.53) at 3.5 warps a scheduler
//     and 54% issue; tinygemm 9.5 (not selected 2.92, math pipe throttle 1.50, wait 1.33, long scoreboard 1.14) at 7.1
//     warps and 75%. No single stall dominates. bench/probes/gemv_loads.cu on the H200: this kernel's load pattern
//     alone streams 8192^2's codes at 3.0 TB/s, row runs 3.4, cudaMemcpy 3.6.
//     (e) int4's zero points: int4_sym (no zeros, same g128) runs 10-13% faster than int4 (8192^2 20.8 against 23.2,
//     28672x8192 59.9 / 68.6, 4096x14336 19.6 / 22.0, 14336x4096 21.0 / 24.0, 4096^2 8.4 / 9.0 us), below tinygemm's
//     11:35 UTC graph times at three of the five shapes: the zero points are int4's whole gap to nf4. Tried: the
//     block's zero points staged once in shared memory as (z, z) pairs (16 KB more a block, rows an odd word count
//     apart), one LDS a tile and step instead of the byte loads packed into S.z: slower, 4096^2 9.0 -> 10.0, 8192^2
//     22.9 -> 29.0, 28672x8192 68.5 -> 91.3, 4096x14336 22.2 -> 23.5, 14336x4096 24.0 -> 30.8 (the two-block shapes
//     lost most: 104 KB a block probably left one block an SM, not checked; the one-block W16 shapes lost 6-12% too).
//     Likely cost (not measured): load() packs the four bytes into S.z right after loading them, so each warp stalls
//     there for them. Cheapest test (compiled here, not run): the four bytes kept unpacked in the stage at M = 1
//     (ptxas, sm_90a: 128 registers, no spill with XS, 16-20 bytes without). Then, if that is it, a prepared
//     [N / 32, K / G, 8, 4] zero-point layout: one 32-bit load a step, already in S.z's byte order.
//   round 13 (H200, 2026-11-28, same method; kept: (e)). (a) The four zero bytes kept unpacked in the stage (branch
//     exp/int4-zero-unpacked): within 2% (8192^2 int4 23.3 -> 22.8, 4096x14336 22.2 -> 22.5), so the packing is not
//     the stall. (b) The zero points folded into the float32 slot sums, s (sum x lut[c] - z sum x), the x sums from 4
//     MMAs a step with B = 1 and the zeros loaded like the scales (2 byte loads a tile): correct, 10-24% slower
//     (8192^2 int4 23.0 -> 25.4, 28672x8192 68.5 -> 77.0): 16 HSUB2s a tile are cheap, loads are not. (c) Timing
//     only (wrong values, in-bounds reads): the step's scales as 2 x 16-byte loads and its zero bytes as one 32-bit
//     load, as a prepared [N / 32, K / G, 32] layout would give (32 rows of a group in 1-4 sectors against 32):
//     int4 / nf4 8192^2 22.9 / 21.4 -> 20.5 / 19.6, 28672x8192 68.6 / 61.4 -> 62.8 / 56.0, 14336x4096 24.0 / 21.7 ->
//     22.0 / 20.4, 4096x14336 22.2 / 20.3 -> 20.3 / 19.7 (the zero load alone: int4 8192^2 21.8). So the metadata's
//     sector count is worth 8-10% at M = 1; not built, as it needs a second, derived copy of the scales and zeros
//     that in-place weight updates and captured CUDA graphs would leave stale. (d) The same loads without a layout
//     change, one vector load of its own row per lane and step passed on through a 10 KB per-warp shared buffer:
//     correct (tests/test_cuda_gemv.py), 16-27% slower even for int4_sym (8192^2 nf4 21.3 -> 25.8). (e) Why (d) and
//     round 12 (e)'s staging lost: shared memory shrinks the L1. The largest carveout
//     (cudaFuncAttributePreferredSharedMemoryCarveout = 100) made the base kernel 10-27% slower (8192^2 nf4 21.4 ->
//     25.5); allocating only up to the table's end (nib_smem_at: 90,096 -> 64,512 bytes a block) made it faster,
//     kept: see nib_smem_at's numbers.
//   round 14 (H200, 2026-11-28, bench/probes/m1_ab.py: graph us, builds alternated twice in one call, M = 1, int4 /
//     nf4 / nvfp4 / mxfp4). (a) Kept: the step's group index kg / G by multiply-high (common.cuh divider) instead of
//     the division's ~18 SASS instructions (a loop of two steps: 755 -> 708). As a shift (power-of-two G) against the
//     base in one call: 8192^2 22.2 / 20.3 / 21.0 / 20.8 -> 21.6 / 19.9 / 20.5 / 20.5, 28672x8192 67.5 / 59.2 / 62.9 /
//     61.0 -> 64.9 / 57.7 / 60.9 / 59.5, 14336x4096 23.4 / 21.2 / 22.0 / 21.6 -> 22.7 / 20.9 / 21.7 / 21.0, 4096x14336
//     22.3 / 20.3 / 22.2 / 20.1 -> 21.2 / 20.1 / 21.7 / 19.8, 4096^2 9.0 / 8.6 / 9.0 / 9.3 -> 8.9 / 8.5 / 8.8 / 9.3;
//     the multiply-high (any G) in the next call within 0.2 us of the shift. (b) Kept for W16: the 64 KB table
//     (kT64Base), one PRMT a lookup (its numbers there). (c) Tried and dropped: the block's codes prefetched into L2 at
//     its start (cp.async.bulk.prefetch, one per row, with and without evict_first): 18-23% slower everywhere (8192^2
//     nf4 20.3 -> 24.9, 28672x8192 59.2 -> 68.7), so the TMA-issued stream delays the warps' own loads rather than
//     hiding their latency.
// Small-M linear (the decode case): y[M, N] = x[M, K] @ dequant(W)^T (+ bias), fp32 accumulation.
//
// Tensor-core GEMV ("mma" path; bf16 / fp16 x, K % 32 == 0, G == 16 or G % 32 == 0):
//   - Weights stay in the canonical layout (uint8 [N, K/2], element 2i in the low nibble; int8/uint8 [N, K]): each
//     lane loads 16 contiguous bytes (32 nibbles) of one row, or 32 bytes for 8-bit codes, so a quad of lanes reads
//     a 64-byte (128-byte) run of a row and every 32-byte sector fetched is used whole. No preprocessing is needed.
//   - The 32 elements a lane holds become the B fragments of eight m16n8k16 MMAs directly: B register r holds
//     elements (2r, 2r+1) of the lane's run, and the A fragments are the same columns of x. The MMA sums over its
//     16 k in any order across lanes, so the lane's k set only has to match between A and B, never the MMA's own
//     k numbering.
//   - 4-bit decode: a per-lane copy of a 256-entry table, byte -> (lut[lo], lut[hi]) as a bf16x2/f16x2 pair, in
//     shared memory (32 copies, word e * 32 + lane, so every lookup of a warp hits 32 distinct banks); then
//     (pair - zero) * scale in packed half arithmetic. 8-bit decode goes through f32 (exact integers).
//   - x is staged in shared memory once per block (16-byte pieces XOR-swizzled against bank conflicts), M <= 16 rows
//     padded to the MMA's 16 with zero registers. A block is 8 warps x 2 n8 tiles = 128 rows; each warp walks its
//     K slice in steps of 4 x 128 columns with 8 independent 16-byte loads in flight per lane.
//   - Split-K over blockIdx.y when N / 128 blocks would not fill the GPU or when x would not fit in shared memory;
//     partial sums go to a float32 workspace and a second kernel adds them in a fixed order (deterministic).
//   Rounding: the weight reaches the MMA as a bf16/fp16 value, bf16((lut[c] - z)) * bf16(s) rounded (exact for
//   nvfp4 / mxfp4 in bf16, and for int4 / int8 codes times a power-of-two scale); the global scale multiplies the
//   fp32 sum. At M = 1 the 4-bit kernel multiplies float32 sums by the float32 scale instead (GS below): one rounding
//   fewer. tests/test_cuda_gemv.py derives the extra error term.
// Generic path (fp32 x, or any other shape): one warp per output row, exact fp32 dequantization
//   v = ((lut[c] - z) * s) * g from a shared-memory LUT, fp32 FMA, fixed-order warp reduction.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "api.h"
#include "common.cuh"
#include "nib4.cuh"

#ifndef FOURBIT_GEMV_ABL
#define FOURBIT_GEMV_ABL 0  // probe only (bench/probes/gemv_abl.cu): 1 no scale/zero multiply, 2 no decode, 3 int4 bit decode
#endif

namespace fourbit_cuda {
namespace {

constexpr int kWarps = 8;     // warps per block
constexpr int kR = 2;         // n8 tiles per warp
constexpr int kRows = kWarps * kR * 8;  // rows per block (128)
constexpr int kTableBytes = 256 * 32 * 4;  // per-lane byte-pair tables
constexpr int kMaxSmem = 96 * 1024;

struct Params {
  const void* x; int M; const uint8_t* q; int N; int K; int G;
  const void* scales; int sk; const uint8_t* zeros; const float* gscale; const float* lut;
  const void* bias; void* out; float* ws; int ksl;
  uint32_t gmul; int gshr;  // k / G = umulhi(k, gmul) >> gshr (common.cuh divider): the 4-bit GEMV's group index
};

__device__ __forceinline__ uint4 ldg_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}
__device__ __forceinline__ uint32_t load_scale_raw(const void* s, int sk, int64_t i) {
  if (sk == SK_F32) return __ldg(reinterpret_cast<const uint32_t*>(s) + i);
  return __ldg(reinterpret_cast<const uint8_t*>(s) + i);
}

template <typename XT, int QK>
__global__ void __launch_bounds__(kWarps * 32, 2) gemv_mma_kernel(Params p) {
  pdl_trigger();  // the split-K reduce after it may launch now (it waits for this grid: common.cuh)
  extern __shared__ __align__(16) uint8_t smem[];
  constexpr int NV = QK == QK_NIB4 ? 1 : 2;  // 16-byte loads per lane per chunk per tile
  constexpr int kU = QK == QK_NIB4 ? 4 : 2;  // 128-column chunks per loop iteration (8 / 8 loads in flight)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int ks = blockIdx.y * p.ksl;
  const int ke = min(p.K, ks + p.ksl);
  const int kalloc = p.ksl;  // multiple of 128
  const int M = p.M, N = p.N, K = p.K, G = p.G;
  const int64_t rowbytes = QK == QK_NIB4 ? K / 2 : K;
  const int ng = K / G;
  const bool hz = p.zeros != nullptr;
  const int n_base = blockIdx.x * kRows + warp * (kR * 8);

  uint32_t* tbl = reinterpret_cast<uint32_t*>(smem);
  XT* xs = reinterpret_cast<XT*>(smem + (QK == QK_NIB4 ? kTableBytes : 0));

  // Issue the first batch of weight loads before the shared-memory set-up, so their latency overlaps it.
  uint4 wv[kU][kR][NV];
  uint32_t sraw[kU][kR][2], zraw[kU][kR];  // zraw: zero bytes (lo, hi) of the run's two halves
  auto load_batch = [&](int c) {
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int k0 = c + u * 128 + t * 32;
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        const int n = n_base + r * 8 + g;
        const bool ok = k0 < ke && n < N;
#pragma unroll
        for (int v = 0; v < NV; ++v) wv[u][r][v] = make_uint4(0, 0, 0, 0);
        sraw[u][r][0] = sraw[u][r][1] = 0; zraw[u][r] = 0;
        if (ok) {
          const uint8_t* src = p.q + (int64_t)n * rowbytes + (QK == QK_NIB4 ? k0 / 2 : k0);
#pragma unroll
          for (int v = 0; v < NV; ++v) wv[u][r][v] = ldg_stream(src + 16 * v);
          const int64_t j0 = (int64_t)n * ng + k0 / G, j1 = G == 16 ? j0 + 1 : j0;
          sraw[u][r][0] = load_scale_raw(p.scales, p.sk, j0);
          sraw[u][r][1] = G == 16 ? load_scale_raw(p.scales, p.sk, j1) : sraw[u][r][0];
          if (hz) zraw[u][r] = uint32_t(__ldg(p.zeros + j0)) | (uint32_t(__ldg(p.zeros + j1)) << 16);
        }
      }
    }
  };
  load_batch(ks);

  if (QK == QK_NIB4) {
    __shared__ XT lut_s[16];
    if (threadIdx.x < 16) lut_s[threadIdx.x] = from_f32<XT>(p.lut[threadIdx.x]);
    __syncthreads();
    for (int i = threadIdx.x; i < 256 * 32; i += kWarps * 32) {
      const int e = i >> 5;
      XT lo = lut_s[e & 15], hi = lut_s[e >> 4];
      uint32_t w = uint32_t(*reinterpret_cast<uint16_t*>(&lo)) | (uint32_t(*reinterpret_cast<uint16_t*>(&hi)) << 16);
      tbl[i] = w;
    }
  }
  {
    const XT* x = reinterpret_cast<const XT*>(p.x);
    const int nvec = (ke - ks) / 8;
    for (int i = threadIdx.x; i < M * nvec; i += kWarps * 32) {
      const int m = i / nvec, kk = (i - m * nvec) * 8;
      const uint4 val = *reinterpret_cast<const uint4*>(x + (int64_t)m * K + ks + kk);
      const int kb = kk >> 5, piece = (kk >> 3) & 3;
      *reinterpret_cast<uint4*>(xs + m * kalloc + kb * 32 + ((piece ^ ((kb ^ m) & 3)) << 3)) = val;
    }
  }
  __syncthreads();

  const uint32_t* tl = tbl + lane;
  float acc[kR][4];
#pragma unroll
  for (int r = 0; r < kR; ++r) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = 0.f;
  const int gsc_hi = M > 8;

  for (int c = ks; c < ke; c += 128 * kU) {
    if (c != ks) load_batch(c);
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int kk0 = c + u * 128 + t * 32 - ks;  // lane's run, relative to the slice
      const bool kok = kk0 < ke - ks;
      uint32_t xa[16], xb[16];
      {
        const int kb = kk0 >> 5;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          uint4 va = make_uint4(0, 0, 0, 0), vb = make_uint4(0, 0, 0, 0);
          if (kok && g < M)
            va = *reinterpret_cast<const uint4*>(xs + g * kalloc + kb * 32 + ((i ^ ((kb ^ g) & 3)) << 3));
          if (gsc_hi && kok && g + 8 < M)
            vb = *reinterpret_cast<const uint4*>(xs + (g + 8) * kalloc + kb * 32 + ((i ^ ((kb ^ (g + 8)) & 3)) << 3));
          xa[4 * i] = va.x; xa[4 * i + 1] = va.y; xa[4 * i + 2] = va.z; xa[4 * i + 3] = va.w;
          xb[4 * i] = vb.x; xb[4 * i + 1] = vb.y; xb[4 * i + 2] = vb.z; xb[4 * i + 3] = vb.w;
        }
      }
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        const float s0 = decode_scale(p.sk, sraw[u][r][0]), s1 = decode_scale(p.sk, sraw[u][r][1]);
        const uint32_t sc0 = pack2<XT>(s0, s0), sc1 = pack2<XT>(s1, s1);
        const float z0 = float(zraw[u][r] & 0xffffu), z1 = float(zraw[u][r] >> 16);
        const uint32_t zh0 = pack2<XT>(z0, z0), zh1 = pack2<XT>(z1, z1);
        uint32_t b[16];
        if (QK == QK_NIB4) {
#pragma unroll
          for (int w = 0; w < 4; ++w) {
            const uint32_t word = word_of(wv[u][r][0], w);
#pragma unroll
            for (int bb = 0; bb < 4; ++bb) {
              uint32_t v = tl[((word >> (8 * bb)) & 0xffu) * 32];
              if (hz) v = hsub2<XT>(v, w < 2 ? zh0 : zh1);
              b[4 * w + bb] = hmul2<XT>(v, w < 2 ? sc0 : sc1);
            }
          }
        } else {
#pragma unroll
          for (int e = 0; e < 16; ++e) {
            const uint32_t word = word_of(wv[u][r][e / 8], (e / 2) % 4);
            const uint32_t b0 = (word >> (16 * (e % 2))) & 0xffu, b1 = (word >> (16 * (e % 2) + 8)) & 0xffu;
            float f0 = QK == QK_S8 ? float(int8_t(b0)) : float(b0);
            float f1 = QK == QK_S8 ? float(int8_t(b1)) : float(b1);
            if (hz) { const float z = e < 8 ? z0 : z1; f0 -= z; f1 -= z; }
            b[e] = hmul2<XT>(pack2<XT>(f0, f1), e < 8 ? sc0 : sc1);
          }
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const uint32_t a[4] = {xa[2 * j], xb[2 * j], xa[2 * j + 1], xb[2 * j + 1]};
          mma16816<XT>(acc[r], a, b[2 * j], b[2 * j + 1]);
        }
      }
    }
  }

  // Epilogue: c0, c1 -> (row g, cols 2t, 2t+1); c2, c3 -> (row g + 8, same cols).
  const float gs = p.gscale ? __ldg(p.gscale) : 1.f;
  const XT* bias = reinterpret_cast<const XT*>(p.bias);
  XT* out = reinterpret_cast<XT*>(p.out);
#pragma unroll
  for (int r = 0; r < kR; ++r) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int m = g + 8 * (i >> 1), n = n_base + r * 8 + 2 * t + (i & 1);
      if (m >= M || n >= N) continue;
      store_result<XT>(acc[r][i], m, n, M, N, p.ws, p.gscale, gs, bias, out);
    }
  }
}

// ---- 4-bit tensor-core GEMV (the decode path of every nib4 format) ---------------------------------------------
// A block is 8 warps on the same 32 output rows (4 n8 tiles); its K slice is cut into 128-column steps and warp w
// takes steps w, w + 8, ... (intra-block split-K, summed through shared memory in a fixed order at the end). Each
// step a lane loads one 16-byte run (32 codes) per tile plus its scales, two steps in flight (register double
// buffer). x fragments come straight from global memory (L1/L2: x is small and read by every block). The grid is
// ceil(N / 32) x S blocks, S chosen so that the block count is close to a whole number of 2-block-per-SM waves.
// Out-of-range rows are clamped to row N - 1 (their results are dropped), out-of-range K runs get scale 0 and x 0.
constexpr int kNibRows = 32;       // rows per block (4 n8 tiles, one per warp-tile slot)
constexpr int kNibTiles = 4;
// W16 blocks (one an SM) keep their table at shared address kT64Base (nib4.cuh), one PRMT a lookup where the 32 KB
// table takes a shift and a LOP3. Measured (H200, 2026-11-28, bench/probes/m1_ab.py, graph us, two passes, int4 / nf4
// / nvfp4 / mxfp4, M = 1): 4096x14336 21.5 / 20.1 / 21.6 / 19.7 -> 21.2 / 19.5 / 21.2 / 19.5, 4096^2 8.9 / 8.5 / 8.9 /
// 9.3 -> 8.8 / 8.5 / 8.8 / 9.2. 18% fewer SASS instructions in the loop for 1-3%. Tried in the same runs: every
// M <= 8 grid as 16-warp blocks (so that all could take this table) made the two-blocks-an-SM shapes 14-20% slower
// (8192^2 nf4 20.0 -> 22.9 us; with this table 22.3).
constexpr int kNibSmem = 2 * 32768 - 16;  // a 32 KB table at the first 32 KB-aligned shared address (16-byte base)


template <bool G16, bool HZ, bool GS>
struct NibStage {
  uint4 w[kNibTiles];
  uint32_t s0[kNibTiles];  // GS: the scales of rows 2t and 2t + 1 of each tile in the lane's group slot (below)
  uint32_t s1[G16 || GS ? kNibTiles : 1];
  uint32_t z;  // zero points (HZ; G16 never has zeros here): byte r for tile r, one register for all 4 tiles
};

// 8 warps a block at 128 registers (2 blocks an SM), or 16 warps (W16, one block an SM) when the grid has at most
// one block per SM: the block's K steps then spread over twice the warps, each with half the serial work (the kernel
// is bound by each warp's dependent instruction stream). M16 (x rows 8..15 present) ran 4 warps at up to 168
// registers (3 blocks, 12 warps an SM) until round 4; 8 warps at 128 (16 warps an SM) measured 8192^2 M=16 nf4
// 37.3 -> 30.9, nvfp4 40.6 -> 35.7, mxfp4 37.9 -> 31.4 us, 4096^2 2-7% faster, 4096x14336 nf4 / nvfp4 / mxfp4 4-10%
// faster (H100, bench/gpu_gemv.py, one run). With zero points (HZ: int4) M16 keeps 4 warps: at 128 registers it
// spilled 36 bytes on sm_90a and 92 on sm_100a (int4 measured 40.0 -> 35.6 us at 8192^2 but 4% slower on
// 4096x14336; Blackwell unmeasured).
template <bool M16, bool W16 = false, bool HZ = false> struct NibCfg {
  static constexpr bool SMALL = M16 && HZ;
  static constexpr int NW = W16 ? 16 : SMALL ? 4 : 8, MINB = W16 ? 1 : SMALL ? 3 : 2;
};
// XS (M <= 8 only): the block's x slice (M x ksl) is staged in shared memory next to the table, at most kNibXsBytes.
// Why (ncu source counters, H100, 8192^2 int4 M=1): 21% of the warp stall samples were long-scoreboard waits, 314 of
// those 504 on the first MMA of a step, waiting for its x fragment from global memory (L1 hit rate 49%).
constexpr int kNibXsBytes = 24576;
template <bool XS> constexpr int nib_smem() { return kNibSmem + (XS ? kNibXsBytes : 0); }
// The dynamic allocation a block needs when its dynamic shared memory starts at shared address base: up to the
// table's end (x in the gap below it) or, when x does not fit there, x above it; at most nib_smem. The launcher
// takes base = the device's reserved shared memory per block + the kernel's static shared memory (1 KB or 2 KB on
// sm_90: bench/probes/smem_base.cu), the lowest the dynamic base can be. A higher real base (an alignment) only
// shortens the table's need, and the 4 KB margin keeps x below the table for one up to 4 KB higher; past the
// allocation a shared access would fault (out-of-range shared address), never write silently.
// Why: the shared memory a block allocates sets the SM's L1 / shared carveout, and the M = 1 GEMV wants L1. H200,
// 2026-11-28, CUDA-graph us, int4 / nf4 / nvfp4 / mxfp4 at M = 1, 90,096 -> 64,512 bytes a block: 8192^2 23.2 / 21.4
// / 22.1 / 21.4 -> 22.1 / 20.2 / 20.9 / 20.9; 28672x8192 68.5 / 61.1 / 64.0 / 62.7 -> 67.3 / 59.2 / 62.6 / 61.2;
// 14336x4096 24.0 / 21.8 / 22.3 / 21.8 -> 23.3 / 21.4 / 21.9 / 21.7; 4096^2 within 1% and 4096x14336 0-1% slower
// (both one 16-warp block an SM, whose carveout does not change). The reverse, the largest carveout
// (cudaFuncAttributePreferredSharedMemoryCarveout 100, L1 at its smallest), cost 10-27% (8192^2 nf4 25.5 us).
inline int nib_smem_at(int base, bool xs) {
  const int tb = (base + 0x7fff) & ~0x7fff, lo = (base + 63) & ~63;
  const int top = tb + 32768 + (xs && tb - lo < kNibXsBytes + 4096 ? kNibXsBytes : 0);
  return std::min(top - base, xs ? nib_smem<true>() : nib_smem<false>());
}
// GS (M = 1): the group scales multiply the MMA's float32 sums instead of each decoded weight. Lane (g, t) keeps its
// x fragment only where g is the group slot of its run (slot t, or 2 t + word / 2 for G = 16), so row g of the
// MMA's D sums slot g's products alone; the lane holding D[g][2t, 2t + 1] multiplies it by the scales of those two
// rows in slot g's group (float32) and adds it to its running sums, which a shuffle over g totals at the end. Why:
// bench/probes/gemv_abl.cu (H100 80GB HBM3, 2026-11-28, kernel us after a flush, M = 1): without the decode's
// scale / zero multiplies 8192^2 int4 27.0 -> 22.8, nf4 25.7 -> 20.7, mxfp4 24.8 -> 20.8, nvfp4 27.0 -> 25.4;
// without any decode at all 21.5 / 20.1 / 20.1 / 23.3: the packed-half multiply after each table load cost more than
// the load. Rounding: the weight reaches the MMA as h(h(lut[c]) - z), exact for integer codes and E2M1; the scale
// and the global scale are applied in float32.
template <typename XT, int SK, bool G16, bool HZ, bool M16, bool XS, bool W16, bool GS = false>
__global__ void __launch_bounds__(NibCfg<M16, W16, HZ>::NW * 32, NibCfg<M16, W16, HZ>::MINB)
    gemv_nib4_kernel(Params p) {
  pdl_trigger();  // the split-K reduce after it may launch now (it waits for this grid: common.cuh)
  constexpr int NW = NibCfg<M16, W16, HZ>::NW;
  static_assert(!(W16 && M16), "16 warps only for M <= 8");
  static_assert(!(G16 && HZ), "zero points are one byte per tile (nib4_fast: no G == 16 with zeros)");
  static_assert(!(XS && M16), "x staging holds at most 8 rows");
  static_assert(!(GS && M16), "group slots use the MMA's rows: M = 1 only");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int N = p.N, K = p.K, G = p.G, M = p.M;
  const int ks = blockIdx.y * p.ksl, ke = min(K, ks + p.ksl);
  const int nst = (ke - ks + 127) >> 7;
  const int ng = K / G;
  const int n0 = blockIdx.x * kNibRows;
  const int64_t rowbytes = K / 2;
  int nr[kNibTiles];  // the lane's row in each tile (clamped); 64-bit addresses are formed per load (fewer registers)
#pragma unroll
  for (int r = 0; r < kNibTiles; ++r) nr[r] = min(n0 + r * 8 + g, N - 1);

  // GS: lane (g, t)'s group slot g covers columns [16 g, 16 g + 16) (G = 16) or [32 g, 32 g + 32) (g < 4; slots 4..7
  // hold no run) of each step; its scales are those of rows n0 + 8 r + 2t and + 1
  const int gsl = G16 ? 16 * g : 32 * g;
  // (a per-lane base for row n0 + 2t and 32-bit offsets from it: r * 8 * ng + gi < 33 ng < 2^31 as K < 2^30)
  const void* gs_sp = GS ? static_cast<const uint8_t*>(p.scales) + int64_t(n0 + 2 * t) * ng * (SK == SK_F32 ? 4 : 1)
                         : p.scales;
  auto load = [&](NibStage<G16, HZ, GS>& S, int st) {
    const int k0 = ks + st * 128 + t * 32;
    const bool kv = k0 < ke;
    const int kc = kv ? k0 : ks;
    const int kg = ks + st * 128 + gsl;
    const bool gv = GS && (G16 || g < 4) && kg < ke;
    const int gi = GS ? int(__umulhi(uint32_t(kg), p.gmul) >> p.gshr) : 0;
#pragma unroll
    for (int r = 0; r < kNibTiles; ++r) {
      S.w[r] = ldg_stream(p.q + (int64_t)nr[r] * rowbytes + kc / 2);
      const int64_t j = (int64_t)nr[r] * ng + int(__umulhi(uint32_t(kc), p.gmul) >> p.gshr);
      if (GS) {  // rows 2t, 2t + 1 of the tile, the slot's group (0 past N or past the slice: their sums are 0)
        const int o = r * 8 * ng + gi;
        S.s0[r] = gv && n0 + r * 8 + 2 * t < N ? ld_scale<SK>(gs_sp, o) : 0u;
        S.s1[r] = gv && n0 + r * 8 + 2 * t + 1 < N ? ld_scale<SK>(gs_sp, o + ng) : 0u;
      } else {
        S.s0[r] = kv ? ld_scale<SK>(p.scales, j) : 0u;
        if (G16) S.s1[r % (G16 ? kNibTiles : 1)] = kv ? ld_scale<SK>(p.scales, j + 1) : 0u;
      }
      if (HZ) S.z = r == 0 ? uint32_t(__ldg(p.zeros + j)) : S.z | (uint32_t(__ldg(p.zeros + j)) << (8 * r));
    }
  };

  NibStage<G16, HZ, GS> A, B;
  if (warp < nst) load(A, warp);  // the first weight loads, in flight during the table build and the x staging

  // Per-lane byte-pair tables: word e * 32 + lane = (lut[e & 15], lut[e >> 4]) in XT, in dynamic shared memory at
  // a 32 KB-aligned shared address tb32, so a lookup's address ((byte << 7) & 0x7f80) | (tb32 | lane << 2) is one
  // shift, one LOP3 and one LDS (no base add); W16 blocks: word e * 64 + lane at kT64Base, one PRMT and one LDS.
  extern __shared__ __align__(16) uint8_t nib_dyn[];
  const uint32_t sb32 = uint32_t(__cvta_generic_to_shared(nib_dyn));
  constexpr bool T64 = W16;  // the 64 KB table (kT64Base)
  const uint32_t tb32 = T64 ? kT64Base : (sb32 + 0x7fffu) & ~0x7fffu;
  if (T64) t64_check(sb32, 64u + uint32_t(kNibXsBytes));  // the table and, below it, x (launch_nib4_k)
  uint32_t* tbl = reinterpret_cast<uint32_t*>(nib_dyn + (tb32 - sb32));
  // XS: x rows [0, M) x columns [ks, ke) as 16-byte chunks; chunk c of row m at xs32 + (m * ksl / 8 + phys) * 16 with
  // phys = c ^ ((c >> 3 & 1) << 1) ^ (m & 1), so the 8 lanes of an LDS.128 phase (rows g, g + 1, t = 0..3, reading
  // chunks 4t + i) hit 8 distinct 16-byte bank groups. Placed below the table when that gap is large enough, else
  // above it (the allocation has room for either: the gap below is < 32 KB - 16, kNibXsBytes more above).
  // Row by row: no division by the chunk count per chunk. The chunks go by cp.async, issued before the table build:
  // all of a thread's chunks and the table's lut loads are in flight at once and hold no registers (register loads
  // waited one round trip per chunk, and batching them made ptxas spill).
  uint32_t xs32 = 0;
  if (XS) {
    const int nch = (ke - ks) >> 3;
    const uint32_t need = uint32_t(M * p.ksl * 2);
    const uint32_t lo64 = (sb32 + 63u) & ~63u;  // 64-byte aligned (the lookup below XORs address bits 4-5)
    xs32 = T64 || tb32 - lo64 >= need ? lo64 : tb32 + 32768u;
    const XT* xg = reinterpret_cast<const XT*>(p.x);
    for (int m = 0; m < M; ++m) {
      const uint4* src = reinterpret_cast<const uint4*>(xg + (int64_t)m * K + ks);
      for (int c = threadIdx.x; c < nch; c += NW * 32) {
        const uint32_t phys = uint32_t(c ^ (((c >> 3) & 1) << 1) ^ (m & 1));
        cp_async16(xs32 + (uint32_t(m * (p.ksl >> 3)) + phys) * 16u, src + c);
      }
    }
    cp_commit();
  }
  if (T64) build_pair_table<XT, NW * 32, 64>(tbl, p.lut);  // (nib4.cuh)
  else build_pair_table<XT, NW * 32>(tbl, p.lut);
  // GS with E8M0 scales: byte -> float32 from a table (one LDS for a shift and four compares and selects: mxfp4 was
  // the one format the float32 fold did not speed up)
  __shared__ float e8_tbl[GS && SK == SK_E8M0 ? 256 : 1];
  if (GS && SK == SK_E8M0)
    for (int i = threadIdx.x; i < 256; i += NW * 32) e8_tbl[i] = e8m0_to_f32(uint32_t(i));
  if (XS) cp_wait<0>();
  __syncthreads();
  uint32_t lb;  // tb32 | lane << 2, defined after the barrier (volatile asm) so no lookup can move above it
  asm volatile("mov.b32 %0, %1;\n" : "=r"(lb) : "r"(tb32 | (uint32_t(lane) << 2)));

  const XT* x = reinterpret_cast<const XT*>(p.x);
  const bool xa_ok = g < M, xb_ok = M16 && g + 8 < M;
  // XS: chunk c = st * 16 + 4 t + i of row m (rows g >= M read row 0: their D rows are dropped) sits at physical
  // chunk st * 16 + 4 t + (i ^ X), X = (t & 2) ^ (m & 1) (the staging's swizzle, as c >> 3 & 1 = t >> 1 there), so
  // with xs32 64-byte aligned its address is (xq + st * 256) ^ (i << 4), xq = xs32 + m * ksl * 2 + 64 t + 16 X:
  // one IMAD and one LOP3 per load (was ~12 instructions of index math and a branch).
  const int xm = xa_ok ? g : 0;
  const uint32_t xq = XS ? xs32 + uint32_t(xm * p.ksl * 2 + 64 * t + 16 * ((t & 2) ^ (xm & 1))) : 0u;
  const XT* xa_p = x + (int64_t)(xa_ok ? g : 0) * K;
  const XT* xb_p = x + (int64_t)(xb_ok ? g + 8 : 0) * K;

  float acc[kNibTiles][4], acc2[kNibTiles][4];  // acc2: the M <= 8 odd-byte MMAs (valid in rows g + 8); unused for M16
#pragma unroll
  for (int r = 0; r < kNibTiles; ++r)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[r][i] = acc2[r][i] = 0.f;
  float ys[kNibTiles][2] = {};  // GS: slot g's scaled sums of rows 2t, 2t + 1 of each tile

  auto compute = [&](const NibStage<G16, HZ, GS>& S, int st) {
    const int k0 = ks + st * 128 + t * 32;
    const bool kv = k0 < ke;
    // M <= 8: the 16-byte x load of word w of the run is itself the A quad {x0, x1, x2, x3} of two MMAs: with B =
    // (byte 0, byte 2) of weight word w, D rows g get x0 . b0 + x2 . b2 (rows g + 8 get junk); with B = (byte 1,
    // byte 3) into a second accumulator, D rows g + 8 get x1 . b1 + x3 . b3 (rows g get junk). No register moves.
    // M16: A fragments {x[g][2j], x[g+8][2j], x[g][2j+1], x[g+8][2j+1]} of the step's 8 k16 slices.
    uint32_t af[8][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint4 va = make_uint4(0, 0, 0, 0), vb = make_uint4(0, 0, 0, 0);
      const bool xv = kv && (!GS || g == (G16 ? 2 * t + (i >> 1) : t));  // GS: only in the run's group slot
      if (XS) {  // chunk c = st * 16 + 4 t + i: address ((xq + st * 256) ^ (i << 4)), see xq; zeros past ke
        const uint32_t a = (xq + uint32_t(st) * 256u) ^ uint32_t(i << 4);
        asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %5, 0;\n mov.b32 %0, 0;\n mov.b32 %1, 0;\n mov.b32 %2, 0;\n"
                     " mov.b32 %3, 0;\n @p ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n}\n"
                     : "=r"(va.x), "=r"(va.y), "=r"(va.z), "=r"(va.w) : "r"(a), "r"(int(xv)) : "memory");
      } else if (xv && (!M16 || xa_ok)) va = __ldg(reinterpret_cast<const uint4*>(xa_p + k0) + i);
      if (M16 && kv && xb_ok) vb = __ldg(reinterpret_cast<const uint4*>(xb_p + k0) + i);
      if (M16) {
        af[2 * i][0] = va.x; af[2 * i][2] = va.y; af[2 * i + 1][0] = va.z; af[2 * i + 1][2] = va.w;
        af[2 * i][1] = vb.x; af[2 * i][3] = vb.y; af[2 * i + 1][1] = vb.z; af[2 * i + 1][3] = vb.w;
      } else {
        af[2 * i][0] = va.x; af[2 * i][1] = va.y; af[2 * i][2] = va.z; af[2 * i][3] = va.w;
      }
    }
#pragma unroll
    for (int r = 0; r < kNibTiles; ++r) {
      const uint32_t sc0 = GS ? 0u : scale_pair<XT, SK>(S.s0[r]);
      const uint32_t sc1 = GS ? 0u : G16 ? scale_pair<XT, SK>(S.s1[r % (G16 || GS ? kNibTiles : 1)]) : sc0;
      uint32_t zh0 = 0;
      if (HZ) {
        const float z0 = float((S.z >> (8 * r)) & 0xffu);
        zh0 = pack2<XT>(z0, z0);
      }
      uint32_t b[16];
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const uint32_t word = word_of(S.w[r], w);
#pragma unroll
        for (int bb = 0; bb < 4; ++bb) {
#if FOURBIT_GEMV_ABL == 2
          b[4 * w + bb] = bb == 0 ? word : word >> (8 * bb);
#elif FOURBIT_GEMV_ABL == 3
          uint32_t v = (bb == 0 ? word : word >> (4 * bb)) & 0x000f000fu | 0x43004300u;
          if (HZ) v = hsub2<XT>(v, zh0);
          b[4 * w + bb] = v;
#else
          uint32_t addr;
          if (T64) addr = t64_addr(word, lb, bb);
          else addr = ((bb == 0 ? word << 7 : word >> (8 * bb - 7)) & 0x7f80u) | lb;
          uint32_t v;
          asm("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr));
#if FOURBIT_GEMV_ABL == 1
          b[4 * w + bb] = v;
#else
          if (HZ) v = hsub2<XT>(v, zh0);
          b[4 * w + bb] = GS ? v : hmul2<XT>(v, w < 2 ? sc0 : sc1);
#endif
#endif
        }
      }
#if FOURBIT_GEMV_ABL
      b[0] ^= sc0 ^ sc1 ^ zh0;  // keep the scale and zero loads alive (the scale-after variant's fold costs ~this)
#endif
      if constexpr (GS) {  // this step's slot sums (D rows g: even bytes, rows g + 8: odd bytes), scaled in float32
        float d[4], d2[4];
        mma16816_z<XT>(d, af[0], b[0], b[2]);
        mma16816_z<XT>(d2, af[0], b[1], b[3]);
#pragma unroll
        for (int j = 2; j < 8; ++j)
          mma16816<XT>((j & 1) ? d2 : d, af[2 * (j >> 1)], b[4 * (j >> 1) + (j & 1)], b[4 * (j >> 1) + 2 + (j & 1)]);
        float f0, f1;
        if (SK == SK_E8M0) {
          f0 = e8_tbl[S.s0[r]];
          f1 = e8_tbl[S.s1[r % (G16 || GS ? kNibTiles : 1)]];
        } else {
          scale_f32x2<SK>(S.s0[r], S.s1[r % (G16 || GS ? kNibTiles : 1)], f0, f1);
        }
        ys[r][0] = fmaf(f0, d[0] + d2[2], ys[r][0]);
        ys[r][1] = fmaf(f1, d[1] + d2[3], ys[r][1]);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (M16) {
            mma16816<XT>(acc[r], af[j], b[2 * j], b[2 * j + 1]);
          } else {
            const int w = j >> 1;
            mma16816<XT>((j & 1) ? acc2[r] : acc[r], af[2 * w], b[4 * w + (j & 1)], b[4 * w + 2 + (j & 1)]);
          }
        }
      }
    }
  };

  for (int st = warp; st < nst; st += 2 * NW) {
    const bool more = st + NW < nst;
    if (more) load(B, st + NW);
    compute(A, st);
    if (!more) break;
    if (st + 2 * NW < nst) load(A, st + 2 * NW);
    compute(B, st + NW);
  }

  if (GS) {  // total the group slots (lanes g = 0..7 of each t, a fixed butterfly): row 0 of D in the lanes g = 0
#pragma unroll
    for (int r = 0; r < kNibTiles; ++r) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        float v = ys[r][i];
        v += __shfl_xor_sync(0xffffffffu, v, 4);
        v += __shfl_xor_sync(0xffffffffu, v, 8);
        v += __shfl_xor_sync(0xffffffffu, v, 16);
        acc[r][i] = v;
      }
    }
  } else if (!M16) {
#pragma unroll
    for (int r = 0; r < kNibTiles; ++r) { acc[r][0] += acc2[r][2]; acc[r][1] += acc2[r][3]; }
  }
  // Cross-warp sum in a fixed order (warp 0 .. 7), through the table's shared memory.
  __syncthreads();
  float* red = reinterpret_cast<float*>(tbl);
#pragma unroll
  for (int r = 0; r < kNibTiles; ++r)
#pragma unroll
    for (int i = 0; i < 4; ++i) red[((r * 4 + i) * NW + warp) * 32 + lane] = acc[r][i];
  __syncthreads();
  const float gs = p.gscale ? __ldg(p.gscale) : 1.f;
  const XT* bias = reinterpret_cast<const XT*>(p.bias);
  XT* out = reinterpret_cast<XT*>(p.out);
  for (int o = threadIdx.x; o < kNibTiles * 4 * 32; o += NW * 32) {
    const int ri = o >> 5, ln = o & 31, r = ri >> 2, i = ri & 3;
    const int m = (ln >> 2) + 8 * (i >> 1), n = n0 + r * 8 + 2 * (ln & 3) + (i & 1);
    if (m >= M || n >= N) continue;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < NW; ++w) v += red[(ri * NW + w) * 32 + ln];
    store_result<XT>(v, m, n, M, N, p.ws, p.gscale, gs, bias, out);
  }
}

// Generic exact path: one warp per output row n, all M rows of x (M <= 16) at once.
template <typename XT, int QK>
__global__ void __launch_bounds__(256) gemv_generic_kernel(Params p) {
  __shared__ float lut_s[16];
  if (threadIdx.x < 16) lut_s[threadIdx.x] = QK == QK_NIB4 ? p.lut[threadIdx.x] : 0.f;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (n >= p.N) return;
  const int K = p.K, G = p.G, M = p.M, ng = K / G;
  const XT* x = reinterpret_cast<const XT*>(p.x);
  const float g = p.gscale ? __ldg(p.gscale) : 1.f;
  float acc[16];
#pragma unroll
  for (int m = 0; m < 16; ++m) acc[m] = 0.f;
  for (int k = lane; k < K; k += 32) {
    const int64_t j = (int64_t)n * ng + k / G;
    float c;
    if (QK == QK_NIB4) c = lut_s[(p.q[(int64_t)n * (K / 2) + k / 2] >> (4 * (k & 1))) & 15];
    else if (QK == QK_S8) c = float(reinterpret_cast<const int8_t*>(p.q)[(int64_t)n * K + k]);
    else c = float(p.q[(int64_t)n * K + k]);
    if (p.zeros) c = __fsub_rn(c, float(p.zeros[j]));
    float w = __fmul_rn(c, decode_scale(p.sk, load_scale_raw(p.scales, p.sk, j)));
    if (p.gscale) w = __fmul_rn(w, g);
#pragma unroll
    for (int m = 0; m < 16; ++m)
      if (m < M) acc[m] = fmaf(to_f32(x[(int64_t)m * K + k]), w, acc[m]);
  }
#pragma unroll
  for (int m = 0; m < 16; ++m) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], off);
  }
  if (lane == 0) {
    const XT* bias = reinterpret_cast<const XT*>(p.bias);
    XT* out = reinterpret_cast<XT*>(p.out);
    for (int m = 0; m < M; ++m) {
      float v = acc[m];
      if (bias) v = v + to_f32(bias[n]);
      out[(int64_t)m * p.N + n] = from_f32<XT>(v);
    }
  }
}

bool shape_fits_mma(int xt, int64_t K, int64_t G) {
  return xt != XT_F32 && K % 32 == 0 && (G == 16 || G % 32 == 0) && K <= (int64_t(1) << 30);
}

// Split count and slice length (multiple of 128 columns) of the mma path for an M-slab of Mt <= 16 rows.
void plan(int qk, int64_t Mt, int64_t N, int64_t K, int* S_out, int* ksl_out) {
  const int64_t budget = kMaxSmem - (qk == QK_NIB4 ? kTableBytes : 0);
  const int64_t nblk = (N + kRows - 1) / kRows;
  const int64_t kchunks = (K + 127) / 128;
  // largest slice (in 128-column chunks) whose x rows fit in shared memory
  const int64_t max_chunks = std::max<int64_t>(1, budget / (Mt * 128 * 2));
  int64_t S = (kchunks + max_chunks - 1) / max_chunks;
  const int64_t want = (2 * (int64_t)sm_count() + nblk - 1) / nblk;  // >= 2 blocks per SM
  const int64_t cap = std::max<int64_t>(1, K / 512);                  // >= 512 columns per slice
  S = std::max(S, std::min(want, cap));
  int64_t chunks = (kchunks + S - 1) / S;
  S = (kchunks + chunks - 1) / chunks;
  *S_out = int(S);
  *ksl_out = int(chunks * 128);
}

// Split count and slice length of gemv_nib4_kernel: ceil(N / 32) row blocks times S splits, S (<= 8, >= 8 steps of
// 128 columns per block) picked so that the block count sits just under a whole number of 2-block-per-SM waves.
void plan_nib4(int64_t M, int64_t N, int64_t K, bool hz, int* S_out, int* ksl_out) {
  const bool m16 = M > 8;
  const int64_t nw = m16 && hz ? NibCfg<true, false, true>::NW : NibCfg<false>::NW;
  const int64_t minb = m16 && hz ? NibCfg<true, false, true>::MINB : NibCfg<false>::MINB;
  const int64_t rb = (N + kNibRows - 1) / kNibRows, kst = (K + 127) / 128, slots = minb * (int64_t)sm_count();
  const int64_t smax = std::max<int64_t>(1, std::min<int64_t>(8, kst / nw));
  // cost in 128-column steps per warp: waves x (steps per warp + a fixed ~1 step per block for the 32 KB table and
  // the cross-warp sum) + 2 steps for the split-K pass (ncu, H100: the reduce kernel ran 3.3 us after a 12.6 us
  // 4096^2 M=1 GEMV, i.e. about two DRAM round trips). The fixed terms matter on wide-N, short-K shapes: 14336x4096
  // M=1 took S = 4 (one step per warp, 37.7 us) where 4096x14336 streams the same bytes in 25 us.
  int64_t best = 1;
  double best_cost = 1e30;
  for (int64_t S = 1; S <= smax; ++S) {
    const bool w16 = !m16 && rb * S <= sm_count();  // launch_nib4_t then runs 16-warp blocks, one an SM
    const double waves = w16 ? 1.0 : std::ceil(double(rb * S) / double(slots));
    const double cost = waves * (double(kst) / double(S * (w16 ? 2 * nw : nw)) + 1.0) + (S > 1 ? 2.0 : 0.0);
    if (cost < best_cost - 1e-9) { best_cost = cost; best = S; }
  }
  const int64_t chunks = (kst + best - 1) / best;
  *S_out = int((kst + chunks - 1) / chunks);
  *ksl_out = int(chunks * 128);
}

// One instantiation (M16 x rows 8..15, XS x staging, W16 16-warp blocks, GS M = 1 scale-after) with its
// shared-memory limit set on first use.
template <typename XT, int SK, bool G16, bool HZ, bool M16, bool XS, bool W16, bool GS>
void launch_nib4_k(const Params& p, dim3 grid, cudaStream_t st) {
  const auto fn = gemv_nib4_kernel<XT, SK, G16, HZ, M16, XS, W16, GS>;
  static std::atomic<int> smem_by_dev[kMaxDevices];
  const int smem = per_device(smem_by_dev, [&] {
    const int base = dyn_smem_base(fn);
    const int bytes = W16 ? t64_smem_bytes(base) : base >= 0 ? nib_smem_at(base, XS) : nib_smem<XS>();
    cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    return bytes;
  });
  fn<<<grid, NibCfg<M16, W16, HZ>::NW * 32, smem, st>>>(p);
}

template <typename XT, int SK, bool G16, bool HZ, bool GS>
void launch_nib4_small(const Params& p, dim3 grid, bool xs, bool w16, cudaStream_t st) {
  if (w16) {
    if (xs) launch_nib4_k<XT, SK, G16, HZ, false, true, true, GS>(p, grid, st);
    else launch_nib4_k<XT, SK, G16, HZ, false, false, true, GS>(p, grid, st);
  } else {
    if (xs) launch_nib4_k<XT, SK, G16, HZ, false, true, false, GS>(p, grid, st);
    else launch_nib4_k<XT, SK, G16, HZ, false, false, false, GS>(p, grid, st);
  }
}

template <typename XT, int SK, bool G16, bool HZ>
void launch_nib4_t(const Params& p0, int S, int ksl, cudaStream_t st) {
  Params p = p0;
  p.ksl = ksl;
  dim3 grid((p.N + kNibRows - 1) / kNibRows, S);
  const bool xs = int64_t(p.M) * ksl * 2 <= kNibXsBytes;
  const bool w16 = int64_t(grid.x) * grid.y <= sm_count();  // at most one 8-warp block per SM
  if (p.M > 8) {
    launch_nib4_k<XT, SK, G16, HZ, true, false, false, false>(p, grid, st);
  } else if (p.M == 1) {
    launch_nib4_small<XT, SK, G16, HZ, true>(p, grid, xs, w16, st);
  } else {
    launch_nib4_small<XT, SK, G16, HZ, false>(p, grid, xs, w16, st);
  }
  check_launch("fourbit gemv_nib4");
  if (S > 1) launch_splitk_reduce<XT>(p.ws, S, p.M, p.N, p.gscale, p.bias, p.out, st);
}

template <typename XT>
void launch_nib4(const Params& p, int S, int ksl, cudaStream_t st) {
  const bool hz = p.zeros != nullptr, g16 = p.G == 16;
  if (p.sk == SK_F32) {
    if (hz) launch_nib4_t<XT, SK_F32, false, true>(p, S, ksl, st);
    else launch_nib4_t<XT, SK_F32, false, false>(p, S, ksl, st);
  } else if (p.sk == SK_E4M3) {
    if (g16) launch_nib4_t<XT, SK_E4M3, true, false>(p, S, ksl, st);
    else launch_nib4_t<XT, SK_E4M3, false, false>(p, S, ksl, st);
  } else {
    launch_nib4_t<XT, SK_E8M0, false, false>(p, S, ksl, st);
  }
}

template <typename XT, int QK>
void launch_mma(const Params& p0, int S, int ksl, cudaStream_t st) {
  Params p = p0;
  p.ksl = ksl;
  const int smem = (QK == QK_NIB4 ? kTableBytes : 0) + p.M * ksl * 2;
  static std::atomic<int> attr[kMaxDevices];
  smem_limit(attr, gemv_mma_kernel<XT, QK>, kMaxSmem);
  dim3 grid((p.N + kRows - 1) / kRows, S);
  gemv_mma_kernel<XT, QK><<<grid, kWarps * 32, smem, st>>>(p);
  check_launch("fourbit gemv_mma");
  if (S > 1) launch_splitk_reduce<XT>(p.ws, S, p.M, p.N, p.gscale, p.bias, p.out, st);
}

template <typename XT>
void dispatch_mma(int qk, const Params& p, int S, int ksl, cudaStream_t st) {
  if (qk == QK_NIB4) launch_mma<XT, QK_NIB4>(p, S, ksl, st);
  else if (qk == QK_S8) launch_mma<XT, QK_S8>(p, S, ksl, st);
  else launch_mma<XT, QK_U8>(p, S, ksl, st);
}

template <typename XT>
void launch_generic(int qk, const Params& p, cudaStream_t st) {
  dim3 grid((p.N + 7) / 8);
  if (qk == QK_NIB4) gemv_generic_kernel<XT, QK_NIB4><<<grid, 256, 0, st>>>(p);
  else if (qk == QK_S8) gemv_generic_kernel<XT, QK_S8><<<grid, 256, 0, st>>>(p);
  else gemv_generic_kernel<XT, QK_U8><<<grid, 256, 0, st>>>(p);
  check_launch("fourbit gemv_generic");
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

bool takes_mma(const LinearArgs& a) {
  return shape_fits_mma(a.xt, a.K, a.G) && aligned16(a.x) && aligned16(a.q);
}

}  // namespace

int64_t linear_workspace(int xt, int64_t M, int64_t N, int64_t K, int64_t G, int qk) {
  if (!shape_fits_mma(xt, K, G) || M <= 0 || N <= 0) return 0;
  int S, ksl, S2, ksl2;
  plan(qk, std::min<int64_t>(M, 16), N, K, &S, &ksl);
  if (qk == QK_NIB4) {  // the scale kind is not known here: room for either 4-bit kernel
    for (bool hz : {false, true}) {  // with or without zero points (their M16 blocks differ)
      plan_nib4(std::min<int64_t>(M, 16), N, K, hz, &S2, &ksl2);
      S = std::max(S, S2);
    }
  }
  const int64_t gemv_ws = S > 1 ? int64_t(S) * std::min<int64_t>(M, 16) * N : 0;
  return qk == QK_NIB4 ? std::max(gemv_ws, linear_sm_workspace(M, N, K)) : gemv_ws;  // either kernel may take it
}

const char* linear_path(const LinearArgs& a) { return takes_mma(a) ? "mma" : "generic"; }

void linear(const LinearArgs& a, uintptr_t stream) {
  if (a.M <= 0 || a.N <= 0 || a.K <= 0) return;
  if (a.G <= 0 || a.K % a.G) throw std::invalid_argument("group size must divide K");
  if (a.qk == QK_NIB4 && (a.K % 2 || !a.lut)) throw std::invalid_argument("nib4 needs a lut and even K");
  if (a.N > (int64_t(1) << 31) - kRows || a.M * a.N > (int64_t(1) << 40))
    throw std::invalid_argument("shape too large");
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  if (linear_sm_takes(a)) return linear_sm(a, stream);  // 8 < M <= 64: all M rows at once (gemm_sm.cu)
  const bool mma = takes_mma(a);
  const int elt = a.xt == XT_F32 ? 4 : 2;
  for (int64_t m0 = 0; m0 < a.M; m0 += 16) {
    Params p{};
    p.M = int(std::min<int64_t>(16, a.M - m0));
    p.x = static_cast<const uint8_t*>(a.x) + m0 * a.K * elt;
    p.out = static_cast<uint8_t*>(a.out) + m0 * a.N * elt;
    p.q = a.q; p.N = int(a.N); p.K = int(a.K); p.G = int(a.G);
    p.scales = a.scales; p.sk = a.sk; p.zeros = a.zeros; p.gscale = a.gscale; p.lut = a.lut;
    p.bias = a.bias; p.ws = a.ws; divider(int(a.G), &p.gmul, &p.gshr);
    if (mma && nib4_fast(a.qk, a.sk, a.G, a.zeros != nullptr)) {
      int S, ksl;
      plan_nib4(p.M, a.N, a.K, a.zeros != nullptr, &S, &ksl);
      if (S > 1 && (a.ws == nullptr || a.ws_elems < int64_t(S) * p.M * a.N))
        throw std::invalid_argument("linear: split-K workspace too small (see linear_workspace)");
      if (a.xt == XT_BF16) launch_nib4<__nv_bfloat16>(p, S, ksl, st);
      else launch_nib4<__half>(p, S, ksl, st);
    } else if (mma) {
      int S, ksl;
      plan(a.qk, p.M, a.N, a.K, &S, &ksl);
      if (S > 1 && (a.ws == nullptr || a.ws_elems < int64_t(S) * p.M * a.N))
        throw std::invalid_argument("linear: split-K workspace too small (see linear_workspace)");
      if (a.xt == XT_BF16) dispatch_mma<__nv_bfloat16>(a.qk, p, S, ksl, st);
      else dispatch_mma<__half>(a.qk, p, S, ksl, st);
    } else {
      if (a.xt == XT_F32) launch_generic<float>(a.qk, p, st);
      else if (a.xt == XT_BF16) launch_generic<__nv_bfloat16>(a.qk, p, st);
      else launch_generic<__half>(a.qk, p, st);
    }
  }
}

}  // namespace fourbit_cuda
