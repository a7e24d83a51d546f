/* simd.h - internal: SIMD_CLONES marks a hot loop function for an AVX2 clone picked at
 * load time on x86-64 (the library is built for the baseline ISA; the loops inside use
 * omp simd). Not installed. */
#ifndef DA_SIMD_H
#define DA_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__)
#define SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SIMD_CLONES
#endif

#endif
