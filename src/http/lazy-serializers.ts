import SerializerSelector from '@fastify/fast-json-stringify-compiler';

/**
 * fastify's own response serializers (fast-json-stringify), each compiled when its route first answers with that
 * status instead of when the app starts. Compiling all of them was most of a boot (about 3 s of CPU here); the test
 * suite boots the app over a hundred times and each boot answers on a few routes. The serializer is the same
 * either way; only when it is built differs.
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
