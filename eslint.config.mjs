import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // jest reads its configs as CommonJS.
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'jest.*.js'] },
  js.configs.recommended,
  // The plain scripts (npm start, the benchmarks, jest configs) run on Node as they are.
  { files: ['**/*.mjs', '**/*.js'], languageOptions: { globals: globals.node } },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
);
