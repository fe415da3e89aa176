// ESLint flat config, run by `npm run lint` (then scripts/check-import-cycles.mjs, then `prettier --check .`).
// typescript-eslint runs on the `typescript` devDependency (6.x, the one with a JS API); the build uses
// TypeScript 7 (`typescript-native`). Formatting is Prettier's job, so there are no stylistic rules here.
//
// Not type-aware on purpose: `recommendedTypeChecked` took ~2.5 min on 2 cores (vs seconds without
// type information) and reported ~600 findings, 318 of them no-floating-promises on node:test's
// `test()`/`describe()` calls. The compiler's own strict flags (tsconfig.json) cover most of what
// type information would add.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', '.bench/', 'docs/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // verbatimModuleSyntax keeps every import in the emitted JS unless it is marked `type`.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // `import { type A }` alone still emits `import {} from 'x'` (a side effect) under verbatimModuleSyntax.
      '@typescript-eslint/no-import-type-side-effects': 'error',
      // The code's convention for "deliberately unused": a leading underscore (rest-sibling omission
      // `const { a: _a, ...rest } = o`, an interface method's unused parameter).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `(...args: any[]) => void` is how Node types an EventEmitter listener; elsewhere `any` needs a
      // disable comment that says why.
      '@typescript-eslint/no-explicit-any': ['error', { ignoreRestArgs: true }],
      // Stream and socket option methods (`write(chunk, enc, cb) {}`) get the stream as `this`, so the
      // outer object is reached through `self`.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      // The code states a fallback explicitly (`let ok = false; try { ok = f(); } catch { ok = false; }`);
      // all of this rule's findings were that pattern.
      'no-useless-assignment': 'off',
      // `let timer: T | undefined;` declared before the closures that use it and assigned once after
      // them is deliberate; merging declaration and assignment would reorder the code.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // The only control-character regexes are the validators that reject control characters.
      'no-control-regex': 'off',
      // Log-format tests match padded columns literally ('WARN  [x]'), which reads better than ' {2}'.
      'no-regex-spaces': 'off',
    },
  },
  // Node everywhere but the visualizer page, which runs in the browser (visualizer/tsconfig.json).
  { ignores: ['visualizer/src/**'], languageOptions: { globals: { ...globals.node } } },
  { files: ['visualizer/src/**'], languageOptions: { globals: { ...globals.browser } } },
);
