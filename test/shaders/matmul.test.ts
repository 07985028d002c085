// The matmul kernels' tests (test/shaders/matmulSuite.ts) for tile128x128k16 and the subgroup
// variants, and the variant-independent ones; matmulMore.test.ts covers the other variants.

import { MATMUL_VARIANTS } from '../../src/shaders/matmul.js';
import { FIRST_FILE_VARIANTS, matmulSuite } from './matmulSuite.js';

matmulSuite('matmul WGSL', MATMUL_VARIANTS.filter((v) => FIRST_FILE_VARIANTS.includes(v)), true);
