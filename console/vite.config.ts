import { defineConfig } from 'vite';

/**
 * The back-office console, served by the API server at /console. No React plugin: esbuild compiles
 * the JSX (the automatic runtime), which keeps `npm install`'s build to a few seconds.
 */
export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  esbuild: { jsx: 'automatic' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    rollupOptions: {
      // TanStack Query marks its modules "use client" for React Server Components, which a plain SPA ignores.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning);
      },
    },
  },
  logLevel: 'warn',
});
