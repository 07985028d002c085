// A Node module-resolution hook for the tfjs peer: tfjs-core's ESM files import each other without
// file extensions, which Node's ESM loader refuses. This adds '.js' to those imports only, so that
// tfjs-core/dist/register_all_gradients.js can load (the CJS bundle Node uses registers no gradients).

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<unknown>;

export async function resolve(specifier: string, context: ResolveContext, nextResolve: NextResolve): Promise<unknown> {
  const fromTfjsCore = context.parentURL?.includes('/@tensorflow/tfjs-core/dist/') ?? false;
  if (fromTfjsCore && (specifier.startsWith('./') || specifier.startsWith('../')) && !/\.[cm]?js$/.test(specifier)) {
    try {
      return await nextResolve(`${specifier}.js`, context);
    } catch {
      return nextResolve(`${specifier}/index.js`, context);
    }
  }
  return nextResolve(specifier, context);
}
