// The matmul kernels' tests (test/shaders/matmulSuite.ts) for every variant matmul.test.ts leaves:
// together the two files cover MATMUL_VARIANTS.

import { MATMUL_VARIANTS } from '../../src/shaders/matmul.js';
import { FIRST_FILE_VARIANTS, matmulSuite } from './matmulSuite.js';

matmulSuite('matmul WGSL (more variants)', MATMUL_VARIANTS.filter((v) => !FIRST_FILE_VARIANTS.includes(v)), false);
