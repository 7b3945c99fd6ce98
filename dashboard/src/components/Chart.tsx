import { useEffect, useRef } from 'react';
import { BarChart, LineChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { init, use, type ComposeOption, type EChartsType } from 'echarts/core';
import type { BarSeriesOption, LineSeriesOption } from 'echarts/charts';
import type { GridComponentOption, LegendComponentOption, TooltipComponentOption } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

// Only the parts the pages draw: imported from echarts/core so the chart chunk carries nothing else, and only the
// pages that chart import this module, so it stays out of the initial load.
use([LineChart, BarChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export type ChartOption = ComposeOption<
  LineSeriesOption | BarSeriesOption | GridComponentOption | LegendComponentOption | TooltipComponentOption
>;

/**
 * An ECharts chart drawn on canvas. The tooltip is rendered as canvas rich text, not HTML: ECharts' HTML tooltip
 * writes inline style attributes, which the dashboard's CSP refuses. A canvas says nothing to a screen reader, so
 * `label` describes it (role img) and every chart's numbers are also given as a table or a CSV download beside it.
 */
export function Chart({ option, label, height = 260 }: { option: ChartOption; label: string; height?: number }) {
  const element = useRef<HTMLDivElement>(null);
  const chart = useRef<EChartsType | null>(null);

  useEffect(() => {
    const instance = init(element.current!, undefined, { renderer: 'canvas' });
    chart.current = instance;
    const observer = new ResizeObserver(() => instance.resize());
    observer.observe(element.current!);
    return () => {
      observer.disconnect();
      instance.dispose();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    chart.current?.setOption(
      {
        animation: false,
        tooltip: { trigger: 'axis', renderMode: 'richText', confine: true },
        grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
        ...option,
      },
      { notMerge: true },
    );
  }, [option]);

  return <div ref={element} role="img" aria-label={label} style={{ width: '100%', height }} data-testid="chart" />;
}
