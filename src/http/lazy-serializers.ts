import SerializerSelector from '@fastify/fast-json-stringify-compiler';

/**
 * fastify's own response serializers (fast-json-stringify), each compiled when its route first answers with that
 * status instead of when the app starts. Compiling all of them was most of a start (about 3 s of CPU here); the test
 * suite starts the app some 160 times, in process and as child processes, and each start answers on a few routes.
 * The serializer is the same either way; only when it is built differs.
 */
export function lazySerializerFactory(): SerializerSelector.SerializerFactory {
  const buildSerializer = SerializerSelector();
  return (externalSchemas, options) => {
    const compile = buildSerializer(externalSchemas, options);
    return (route) => {
      let serialize: SerializerSelector.Serializer | undefined;
      return (doc) => (serialize ??= compile(route))(doc);
    };
  };
}
