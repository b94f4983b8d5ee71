/* The footprint baseline: the firmware's scaffolding (startup, semihosting printf, the
 * caller's kernel buffer) without valori. build.sh compares its size with firmware.elf. */
#include <stdint.h>
#include <stdio.h>

#ifndef KERNEL_MEM_BYTES
#define KERNEL_MEM_BYTES (1536u * 1024u)
#endif

static union {
    uint64_t align;
    unsigned char bytes[KERNEL_MEM_BYTES];
} kernel_mem;

int main(void) {
    volatile unsigned char *p = kernel_mem.bytes;
#if defined(__arm__)
    extern void initialise_monitor_handles(void);
    initialise_monitor_handles();
#endif
    p[0] = 1;
    printf("baseline %u %02x\n", (unsigned)sizeof kernel_mem.bytes, p[0]);
    return 0;
}
