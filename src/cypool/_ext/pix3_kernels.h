/* Channels-last max pooling of 8-bit images with three channels (RGB) over
 * 2 x 2 windows at stride 2: one output row from two input rows of 3-byte
 * pixels.  The generic channels-last kernels vectorise along the channel
 * axis, three lanes wide here; this kernel works on the rows' bytes
 * instead.  Per block of 8 output pixels (16 input pixels, 48 bytes):
 * w[x] = max(r0[x], r0[x+3], r1[x], r1[x+3]) over the bytes (the four taps
 * of each channel of pixel pair x/3 .. x/3+1), then the bytes of the even
 * pixels, w[6j .. 6j+2], gathered by one byte shuffle per 16-byte lane and
 * written by three overlapping 16-byte stores (each lane's unused bytes
 * are overwritten by the next store or the next block; the last block
 * ends 9 bytes short of the row, whose tail is scalar).  Integers: the
 * order of the taps does not matter.  Each block hints the input 4 KiB
 * ahead in both rows, past their ends the start of the next output row's
 * rows (``n0``, NULL for none): without hints the kernel ran at 0.72x the
 * generic one from memory, with them 1.48x ((4096, 4096, 3) uint8, AMD
 * EPYC, 1 thread; 1 KiB ahead 1.21x, 8 KiB 1.02x).
 *
 * Needs SSSE3 (pshufb) and SSE4.1 (signed byte max): the AVX2 and AVX-512
 * builds; elsewhere CYPOOL_HAVE_PIX3 is 0 and the generic kernels run. */
#ifndef CYPOOL_PIX3_KERNELS_H
#define CYPOOL_PIX3_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SSSE3__) && defined(__SSE4_1__)
#include <immintrin.h>
#define CYPOOL_HAVE_PIX3 1
#ifndef CYPOOL_PIX3_AHEAD
#define CYPOOL_PIX3_AHEAD 4096
#endif
/* the input CYPOOL_PIX3_AHEAD bytes on in both rows (a, b at block j), or
 * past their ends the next output row's rows (n0, or none) */
#define CYPOOL_PIX3_HINT                                                          \
        if (6 * j + CYPOOL_PIX3_AHEAD < 6 * OW) {                                 \
            _mm_prefetch((const char*)(a + CYPOOL_PIX3_AHEAD), _MM_HINT_T0);      \
            _mm_prefetch((const char*)(b + CYPOOL_PIX3_AHEAD), _MM_HINT_T0);      \
        } else if (n0) {                                                          \
            ptrdiff_t k_ = 6 * j + CYPOOL_PIX3_AHEAD - 6 * OW;                    \
            if (k_ < 6 * OW) {                                                    \
                _mm_prefetch((const char*)(n0 + k_), _MM_HINT_T0);                \
                _mm_prefetch((const char*)(n0 + (r1 - r0) + k_), _MM_HINT_T0);    \
            }                                                                     \
        }

/* The even pixels' bytes of w0..w2 (48 bytes: 16 pixels) to o (24 bytes,
 * 9 more overwritten: see above). */
static inline void cypool_pix3_put(void* o, __m128i w0, __m128i w1, __m128i w2) {
    const __m128i m0 = _mm_setr_epi8(0, 1, 2, 6, 7, 8, 12, 13, 14,
                                     -1, -1, -1, -1, -1, -1, -1);
    const __m128i m1 = _mm_setr_epi8(2, 3, 4, 8, 9, 10, 14, 15,
                                     -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i m2 = _mm_setr_epi8(0, 4, 5, 6, 10, 11, 12,
                                     -1, -1, -1, -1, -1, -1, -1, -1, -1);
    char* p = (char*)o;
    _mm_storeu_si128((__m128i*)p, _mm_shuffle_epi8(w0, m0));
    _mm_storeu_si128((__m128i*)(p + 9), _mm_shuffle_epi8(w1, m1));
    _mm_storeu_si128((__m128i*)(p + 17), _mm_shuffle_epi8(w2, m2));
}

/* The blocks of a row: a, b the two input rows at block j (the body uses
 * them, then the scalar tail, ``TAIL``, runs from the first pixel no block
 * took). */
#define CYPOOL_PIX3_ROW(TYPE, BODY, TAIL)                                         \
    ptrdiff_t j = 0, c;                                                           \
    for (; 3 * j + 33 <= 3 * OW; j += 8) {                                        \
        const TYPE* a = r0 + 6 * j;                                               \
        const TYPE* b = r1 + 6 * j;                                               \
        CYPOOL_PIX3_HINT                                                          \
        BODY                                                                      \
    }                                                                             \
    for (; j < OW; j++) {                                                         \
        for (c = 0; c < 3; c++) {                                                 \
            TAIL                                                                  \
        }                                                                         \
    }

#define CYPOOL_PIX3_W(VMAX, a, b)                                                 \
    VMAX(VMAX(_mm_loadu_si128((const __m128i*)(a)),                               \
              _mm_loadu_si128((const __m128i*)((a) + 3))),                        \
         VMAX(_mm_loadu_si128((const __m128i*)(b)),                               \
              _mm_loadu_si128((const __m128i*)((b) + 3))))
#define CYPOOL_PIX3_MAX(SFX, TYPE, VMAX)                                          \
static void cypool_pix3_max22_##SFX(const TYPE* r0, const TYPE* r1, TYPE* o,      \
                                    ptrdiff_t OW, const TYPE* n0) {               \
    CYPOOL_PIX3_ROW(TYPE,                                                         \
        cypool_pix3_put(o + 3 * j, CYPOOL_PIX3_W(VMAX, a, b),                     \
                        CYPOOL_PIX3_W(VMAX, a + 16, b + 16),                      \
                        CYPOOL_PIX3_W(VMAX, a + 32, b + 32));,                    \
        TYPE m = r0[6 * j + c]; TYPE v;                                           \
        v = r0[6 * j + 3 + c]; m = v > m ? v : m;                                 \
        v = r1[6 * j + c]; m = v > m ? v : m;                                     \
        v = r1[6 * j + 3 + c]; m = v > m ? v : m;                                 \
        o[3 * j + c] = m;)                                                        \
}

CYPOOL_PIX3_MAX(u8, uint8_t, _mm_max_epu8)
CYPOOL_PIX3_MAX(i8, int8_t, _mm_max_epi8)

#if defined(__AVX2__)
#define CYPOOL_HAVE_PIX3_AVG 1
/* The average: the four taps of 16 bytes summed in 16-bit lanes
 * (vpmovzxbw / vpmovsxbw), divided by 4 with cypool's integer rule (toward
 * zero, or to nearest with ties to even: ``nearest``), packed back to
 * bytes, then gathered and stored as the maximum's bytes. */
#define CYPOOL_PIX3_AVG(SFX, TYPE, WIDEN, PACK)                                   \
static inline __m128i cypool_pix3_q4_##SFX(const TYPE* a, const TYPE* b,          \
                                           int nearest) {                         \
    __m256i s = _mm256_add_epi16(                                                 \
        _mm256_add_epi16(WIDEN(_mm_loadu_si128((const __m128i*)a)),               \
                         WIDEN(_mm_loadu_si128((const __m128i*)(a + 3)))),        \
        _mm256_add_epi16(WIDEN(_mm_loadu_si128((const __m128i*)b)),               \
                         WIDEN(_mm_loadu_si128((const __m128i*)(b + 3)))));       \
    __m256i q = _mm256_srai_epi16(s, 2);              /* floor */                 \
    __m256i r = _mm256_and_si256(s, _mm256_set1_epi16(3));                        \
    if (nearest) {                                                                \
        /* up when r > 2, or r == 2 and q odd */                                  \
        __m256i up = _mm256_or_si256(                                             \
            _mm256_cmpgt_epi16(r, _mm256_set1_epi16(2)),                          \
            _mm256_and_si256(_mm256_cmpeq_epi16(r, _mm256_set1_epi16(2)),         \
                             _mm256_cmpeq_epi16(_mm256_and_si256(q,               \
                                 _mm256_set1_epi16(1)), _mm256_set1_epi16(1))));  \
        q = _mm256_sub_epi16(q, up);                  /* up is -1 */              \
    } else {                                                                      \
        /* floor -> toward zero: up when r != 0 and s < 0 */                      \
        __m256i up = _mm256_andnot_si256(                                         \
            _mm256_cmpeq_epi16(r, _mm256_setzero_si256()),                        \
            _mm256_cmpgt_epi16(_mm256_setzero_si256(), s));                       \
        q = _mm256_sub_epi16(q, up);                                              \
    }                                                                             \
    q = PACK(q, q);                                                               \
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(q, 0x08));            \
}                                                                                 \
static void cypool_pix3_avg22_##SFX(const TYPE* r0, const TYPE* r1, TYPE* o,      \
                                    ptrdiff_t OW, const TYPE* n0, int nearest) {  \
    CYPOOL_PIX3_ROW(TYPE,                                                         \
        cypool_pix3_put(o + 3 * j, cypool_pix3_q4_##SFX(a, b, nearest),           \
                        cypool_pix3_q4_##SFX(a + 16, b + 16, nearest),            \
                        cypool_pix3_q4_##SFX(a + 32, b + 32, nearest));,          \
        int s_ = (int)r0[6 * j + c] + r0[6 * j + 3 + c] + r1[6 * j + c]           \
                 + r1[6 * j + 3 + c];                                             \
        int q_ = s_ >> 2; int r_ = s_ & 3;     /* floor (arithmetic shift) */     \
        if (nearest) q_ += (r_ > 2) | ((r_ == 2) & (q_ & 1));                     \
        else q_ += (r_ != 0) & (s_ < 0);                                          \
        o[3 * j + c] = (TYPE)q_;)                                                 \
}

CYPOOL_PIX3_AVG(u8, uint8_t, _mm256_cvtepu8_epi16, _mm256_packus_epi16)
CYPOOL_PIX3_AVG(i8, int8_t, _mm256_cvtepi8_epi16, _mm256_packs_epi16)
#else
#define CYPOOL_HAVE_PIX3_AVG 0
#endif

#else
#define CYPOOL_HAVE_PIX3 0
#define CYPOOL_HAVE_PIX3_AVG 0
static void cypool_pix3_max22_u8(const uint8_t* r0, const uint8_t* r1, uint8_t* o,
                                 ptrdiff_t OW, const uint8_t* n0) {
    (void)r0; (void)r1; (void)o; (void)OW; (void)n0;
}
static void cypool_pix3_max22_i8(const int8_t* r0, const int8_t* r1, int8_t* o,
                                 ptrdiff_t OW, const int8_t* n0) {
    (void)r0; (void)r1; (void)o; (void)OW; (void)n0;
}
#endif

#if !CYPOOL_HAVE_PIX3_AVG
static void cypool_pix3_avg22_u8(const uint8_t* r0, const uint8_t* r1, uint8_t* o,
                                 ptrdiff_t OW, const uint8_t* n0, int nearest) {
    (void)r0; (void)r1; (void)o; (void)OW; (void)n0; (void)nearest;
}
static void cypool_pix3_avg22_i8(const int8_t* r0, const int8_t* r1, int8_t* o,
                                 ptrdiff_t OW, const int8_t* n0, int nearest) {
    (void)r0; (void)r1; (void)o; (void)OW; (void)n0; (void)nearest;
}
#endif

#endif
