/* Minimal Cortex-M startup: vector table, .data/.bss set-up, FPU enable (M4F), and fault
 * handlers that end the QEMU run with a non-zero status instead of hanging. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);

void Reset_Handler(void);
void Fault_Handler(void);
/* No C++ constructors or destructors here: newlib's init/fini hooks are empty. */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

__attribute__((section(".isr_vector"), used)) static const void *const vectors[16] = {
    &_estack,      Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0,             0,             0,             0,             Fault_Handler,
    Fault_Handler, 0,             Fault_Handler, Fault_Handler,
};

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20);
    __asm volatile("dsb\n isb");
#endif
    exit(main());
}

void Fault_Handler(void) {
    /* Semihosting SYS_EXIT with ADP_Stopped_RunTimeErrorUnknown: QEMU exits non-zero. */
    register uint32_t op __asm("r0") = 0x18;
    register uint32_t arg __asm("r1") = 0x20023;
    __asm volatile("bkpt 0xab" : : "r"(op), "r"(arg) : "memory");
    for (;;) {
    }
}
