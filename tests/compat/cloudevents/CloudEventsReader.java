// Reads outboxd's --format=cloudevents records back through the CloudEvents Java SDK's Kafka
// binding (io.cloudevents.kafka.CloudEventDeserializer, binary content mode) and prints each
// event as one JSON line of what the SDK made of it: its attributes, extensions and data. A
// record the SDK cannot read as a valid CloudEvent makes poll() throw, and this exits 1.
//
//   java -cp CLASSPATH:DIR CloudEventsReader BROKERS TOPIC[,TOPIC...] COUNT TIMEOUT_SECONDS
//
// Used by tests/compat/cloudevents_sdk.sh, which compiles it with javac from the jars of
// tests/compat/cloudevents/pom.xml and asserts on the lines. Reads every partition from the
// beginning without a consumer group; stops after COUNT events, fails at the deadline.
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public final class CloudEventsReader {
  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: CloudEventsReader BROKERS TOPIC[,TOPIC...] COUNT TIMEOUT_SECONDS");
      System.exit(2);
    }
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("key.deserializer", StringDeserializer.class.getName());
    props.put("value.deserializer", CloudEventDeserializer.class.getName());
    props.put("enable.auto.commit", "false");
    props.put("auto.offset.reset", "earliest");
    props.put("allow.auto.create.topics", "false");
    final int want = Integer.parseInt(args[2]);
    final long deadline = System.nanoTime() + Long.parseLong(args[3]) * 1_000_000_000L;
    // UTF-8 whatever the locale (Java 17 takes stdout's encoding from it).
    java.io.PrintStream stdout = new java.io.PrintStream(
        new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);
    int printed = 0;
    try (KafkaConsumer<String, CloudEvent> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (String topic : args[1].split(",")) {
        // The topic appears with outboxd's first record into it.
        List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(2));
        while (infos == null || infos.isEmpty()) {
          if (System.nanoTime() > deadline) fail("topic " + topic + " did not appear within " + args[3] + " s");
          Thread.sleep(100);  // pacing between metadata requests, with the deadline above
          infos = consumer.partitionsFor(topic, Duration.ofSeconds(2));
        }
        for (PartitionInfo p : infos) partitions.add(new TopicPartition(topic, p.partition()));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      while (printed < want) {
        if (System.nanoTime() > deadline) fail("only " + printed + " of " + want + " events within " + args[3] + " s");
        for (ConsumerRecord<String, CloudEvent> r : consumer.poll(Duration.ofMillis(200))) {
          stdout.println(toJson(r));
          ++printed;
        }
      }
    }
  }

  private static void fail(String why) {
    System.err.println("CloudEventsReader: " + why);
    System.exit(1);
  }

  private static String toJson(ConsumerRecord<String, CloudEvent> r) {
    CloudEvent e = r.value();
    StringBuilder out = new StringBuilder("{");
    field(out, "topic", r.topic()).append(',');
    out.append("\"partition\":").append(r.partition()).append(',');
    field(out, "key", r.key()).append(',');
    field(out, "specversion", e.getSpecVersion().toString()).append(',');
    field(out, "id", e.getId()).append(',');
    field(out, "source", e.getSource() == null ? null : e.getSource().toString()).append(',');
    field(out, "type", e.getType()).append(',');
    field(out, "subject", e.getSubject()).append(',');
    field(out, "datacontenttype", e.getDataContentType()).append(',');
    field(out, "dataschema", e.getDataSchema() == null ? null : e.getDataSchema().toString()).append(',');
    field(out, "time", e.getTime() == null ? null : e.getTime().toString()).append(',');
    Instant t = e.getTime() == null ? null : e.getTime().toInstant();
    out.append("\"time_micros\":")
        .append(t == null ? "null" : Long.toString(t.getEpochSecond() * 1_000_000L + t.getNano() / 1000))
        .append(',');
    out.append("\"extensions\":{");
    boolean first = true;
    for (String name : new TreeSet<>(e.getExtensionNames())) {
      if (!first) out.append(',');
      first = false;
      Object v = e.getExtension(name);
      field(out, name, v == null ? null : v.toString());
    }
    out.append("},");
    field(out, "data", e.getData() == null ? null : new String(e.getData().toBytes(), StandardCharsets.UTF_8));
    return out.append('}').toString();
  }

  private static StringBuilder field(StringBuilder out, String name, String value) {
    quote(out, name).append(':');
    return value == null ? out.append("null") : quote(out, value);
  }

  private static StringBuilder quote(StringBuilder out, String s) {
    out.append('"');
    for (int i = 0; i < s.length(); ++i) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.append('"');
  }
}
