/* The footprint baseline: the firmware's scaffolding (startup, semihosting printf, the
 * caller's kernel buffer) without valori. build.sh compares its size with firmware.elf. */
#include <stdint.h>
#include <stdio.h>

#include "kernel_mem.h"

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
