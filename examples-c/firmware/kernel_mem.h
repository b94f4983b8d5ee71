/* The caller's memory for the kernel, shared by the firmware and its footprint baseline (so
 * that the baseline has the same buffer): the only RAM valori uses besides the stack. */
#ifndef KERNEL_MEM_H
#define KERNEL_MEM_H

#include <stdint.h>

#ifndef KERNEL_MEM_BYTES
#define KERNEL_MEM_BYTES (1536u * 1024u)
#endif

static union {
    uint64_t align;
    unsigned char bytes[KERNEL_MEM_BYTES];
} kernel_mem;

#endif
