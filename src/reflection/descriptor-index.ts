import { type DescFile, type DescService, toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * The served services' file descriptors, indexed the way server reflection
 * asks for them: by file name and by fully-qualified symbol.
 */
export interface DescriptorIndex {
  /** Fully-qualified names of the served services, sorted. */
  readonly services: readonly string[];
  /** The file with this name (`forest/v1/policy.proto`), or undefined. */
  fileByName(name: string): DescFile | undefined;
  /** The file declaring a service, method, message, field-less enum or extension. */
  fileBySymbol(symbol: string): DescFile | undefined;
  /** The file and every file it imports, transitively, in dependency-first order. */
  withDependencies(file: DescFile): DescFile[];
  /** The serialized FileDescriptorProto of a file (cached). */
  encode(file: DescFile): Uint8Array;
}

/** Builds the index from the generated service descriptors (their files and imports). */
export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const encoded = new Map<DescFile, Uint8Array>();
  const add = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) add(dep);
    for (const type of nestedTypes(file)) {
      symbols.set(type.typeName, file);
      if (type.kind === "service") for (const m of type.methods) symbols.set(`${type.typeName}.${m.name}`, file);
    }
  };
  for (const s of services) add(s.file);

  const withDependencies = (file: DescFile): DescFile[] => {
    const seen = new Set<DescFile>();
    const order: DescFile[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      order.push(f);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return order;
  };

  return {
    services: services.map((s) => s.typeName).sort(),
    fileByName: (name) => files.get(name),
    fileBySymbol: (symbol) => symbols.get(symbol.replace(/^\./, "")),
    withDependencies,
    encode(file) {
      let bytes = encoded.get(file);
      if (bytes === undefined) {
        bytes = toBinary(FileDescriptorProtoSchema, file.proto);
        encoded.set(file, bytes);
      }
      return bytes;
    },
  };
}
