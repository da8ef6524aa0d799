// ESLint runs only the type-aware promise rules that Biome cannot check: Biome's own
// noFloatingPromises misses calls to overloaded methods such as pg's `query`. Everything else
// (lint and format) is Biome's (biome.json).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        // Every package's and service's own tsconfig (new ones included), plus the one that covers
        // tests, benchmarks and scripts.
        project: ['./packages/*/tsconfig.json', './services/*/tsconfig.json', './tsconfig.tests.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
);
